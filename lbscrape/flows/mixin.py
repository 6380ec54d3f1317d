"""`lbscrape mixin`: build the bundle from the catalog and --config, write it atomically.

It reads only local files (--config, --metrics-config) and writes only under --output-dir:
no cluster, no AWS, so CI can generate a team's alerts before its load balancer exists.
"""

from __future__ import annotations

import os
from pathlib import Path

from lbscrape.core.console import Console
from lbscrape.core.errors import ConfigError, ExitStatus
from lbscrape.core.options import load_catalog
from lbscrape.mixin import build
from lbscrape.mixin.config import DEFAULT_CONFIG, parse_owner
from lbscrape.mixin.config import load as load_config
from lbscrape.mixin.render import Format, render


def execute(output_dir: str, config_path: str | None, owner: str | None, fmt: Format,
            metrics_config: str | None, console: Console) -> int:
    try:
        catalog = load_catalog(metrics_config)
        cfg = load_config(config_path) if config_path else DEFAULT_CONFIG
        ref = parse_owner(owner) if owner else None
    except ConfigError as e:
        console.err(f"lbscrape: error: {e}")
        return ExitStatus.USAGE
    bundle = build(catalog, cfg, ref)
    written = render(bundle, fmt)
    try:
        for rel, text in written.items():
            path = Path(output_dir, rel)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)  # a reader (the sidecar, git) never sees half a file
    except OSError as e:
        console.err(f"lbscrape: error: --output-dir: cannot write {e.filename}: "
                    f"{e.strerror or e}")
        return ExitStatus.ERROR
    for rel in written:
        console.out(os.path.join(output_dir, rel))
    for note in bundle.notes:
        console.err(f"note: {note}")
    panels = sum(len(d.panels) for d in bundle.dashboards)
    console.err(f"mixin: {len(bundle.dashboards)} dashboards ({panels} panels), "
                f"{len(bundle.alerts)} alerts, {len(bundle.records)} recording rules"
                + (f" for {ref}" if ref else ""))
    return ExitStatus.OK
