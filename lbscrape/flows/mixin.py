"""`lbscrape mixin`: build the bundle from the catalog and --config, write it atomically,
and remove what an earlier run wrote into the directory and this one does not.

It reads only local files (--config, --metrics-config) and writes only under --output-dir:
no cluster, no AWS, so CI can generate a team's alerts before its load balancer exists.
"""

from __future__ import annotations

import os
from pathlib import Path

from lbscrape.core.console import Console
from lbscrape.core.errors import ConfigError, ExitStatus
from lbscrape.core.options import MixinOptions, load_catalog
from lbscrape.mixin import build, manifest
from lbscrape.mixin.bundle import Bundle
from lbscrape.mixin.config import DEFAULT_CONFIG, parse_owner
from lbscrape.mixin.config import load as load_config
from lbscrape.mixin.render import FORMATS, Format, render


def _bundle(o: MixinOptions) -> tuple[Bundle, Format]:
    """Raises ConfigError naming the option."""
    fmt = next((f for f in FORMATS if f == o.fmt), None)
    if fmt is None:
        raise ConfigError(f"--format: {o.fmt!r} is not one of {', '.join(FORMATS)}")
    catalog = load_catalog(o.metrics_config)
    cfg = load_config(o.config) if o.config else DEFAULT_CONFIG
    ref = parse_owner(o.owner) if o.owner else None
    return build(catalog, cfg, ref), fmt


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)  # a reader (the sidecar, git) never sees half a file


def _previous(out: Path) -> dict[str, str]:
    try:
        return manifest.parse((out / manifest.MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError):
        return {}  # unreadable: remove nothing rather than guess


def _remove_stale(out: Path, previous: dict[str, str], written: dict[str, str]
                  ) -> tuple[list[str], list[str]]:
    """(removed, kept because changed since lbscrape wrote them)."""
    removed, kept = [], []
    for rel in manifest.stale(previous, written):
        path = out / rel
        try:
            if path.is_symlink() or not path.is_file():
                continue  # not the file lbscrape wrote
            if manifest.digest(path.read_text(encoding="utf-8")) != previous[rel]:
                kept.append(rel)
                continue
            path.unlink()
            removed.append(rel)
        except (OSError, UnicodeDecodeError):
            kept.append(rel)
    return removed, kept


def execute(o: MixinOptions, console: Console) -> int:
    try:
        bundle, fmt = _bundle(o)
    except ConfigError as e:
        console.err(f"lbscrape: error: {e}")
        return ExitStatus.USAGE
    written = render(bundle, fmt)
    out = Path(o.output_dir)
    try:
        previous = _previous(out)
        for rel, text in written.items():
            _write(out / rel, text)
        # Removed after the new files are in place and before the manifest forgets them:
        # a crash in between leaves files the next run still knows about.
        removed, kept = _remove_stale(out, previous, written)
        _write(out / manifest.MANIFEST, manifest.render(written))
    except OSError as e:
        console.err(f"lbscrape: error: --output-dir: cannot write {e.filename}: "
                    f"{e.strerror or e}")
        return ExitStatus.ERROR
    for rel in written:
        console.out(os.path.join(o.output_dir, rel))
    for rel in removed:
        console.err(f"removed: {os.path.join(o.output_dir, rel)} (written by an earlier run, "
                    "no longer generated)")
    for rel in kept:
        console.err(f"note: kept {os.path.join(o.output_dir, rel)}: no longer generated, "
                    "but changed since lbscrape wrote it; remove it if it is not yours")
    for note in bundle.notes:
        console.err(f"note: {note}")
    panels = sum(len(d.panels) for d in bundle.dashboards)
    console.err(f"mixin: {len(bundle.dashboards)} dashboards ({panels} panels), "
                f"{len(bundle.alerts)} alerts, {len(bundle.records)} recording rules"
                + (f" for {bundle.owner}" if bundle.owner else ""))
    return ExitStatus.OK
