"""`lbscrape checkpoint show` and `reset`: look at and move run's checkpoints."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from lbscrape.core.checkpoint import FileStore, reset
from lbscrape.core.console import Console, ago, fail, table
from lbscrape.core.errors import ConfigError, ExitStatus, LbscrapeError
from lbscrape.core.model import CLASSIC_KEY_PREFIX, isotime
from lbscrape.core.options import CheckpointOptions, KubeOptions, parse_to
from lbscrape.kube.checkpoint_store import ConfigMapStore
from lbscrape.kube.client import make_api_client


def open_store(checkpoint: CheckpointOptions, kube: KubeOptions) -> ConfigMapStore | FileStore:
    """The checkpoint file, or the ConfigMap (the kubeconfig's namespace by default)."""
    checkpoint.check()
    if checkpoint.file:
        return FileStore(checkpoint.file)
    api, own_namespace = make_api_client(kube.kubeconfig, kube.context)
    return ConfigMapStore(api, checkpoint.location(own_namespace))


def lb_name(key: str) -> str:
    """Checkpoint key -> load balancer name: app/NAME/ID, net/NAME/ID or elb/NAME."""
    if key.startswith(CLASSIC_KEY_PREFIX):
        return key.removeprefix(CLASSIC_KEY_PREFIX)
    parts = key.split("/")
    return parts[1] if len(parts) == 3 else key


def show(checkpoint: CheckpointOptions, kube: KubeOptions, output: str,
         console: Console) -> int:
    try:
        store = open_store(checkpoint, kube)
        ends = store.load().ends
    except LbscrapeError as e:
        return fail(console, e)
    now = int(time.time())
    items = sorted(ends.items())
    if output == "json":
        console.out(json.dumps([{"load_balancer_name": lb_name(k), "load_balancer": k,
                                 "checkpoint": isotime(v), "lag_seconds": now - v}
                                for k, v in items], indent=2))
    elif not items:
        console.out(f"no checkpoints in {store.location}")
    else:
        for line in table([("LOAD BALANCER", "DIMENSION", "CHECKPOINT", "LAG")] + [
                (lb_name(k), k, isotime(v), ago(now - v)) for k, v in items]):
            console.out(line)
    return ExitStatus.OK


def reset_checkpoints(checkpoint: CheckpointOptions, kube: KubeOptions,
                      names: Sequence[str], to: str | None, console: Console) -> int:
    try:
        at = parse_to(to, int(time.time()))
        store = open_store(checkpoint, kube)
        current = store.load()
        keys = None
        if names:
            wanted = set(names)
            keys = {k for k in current.ends if k in wanted or lb_name(k) in wanted}
            missing = wanted - keys - {lb_name(k) for k in keys}
            if missing:
                raise ConfigError(f"--load-balancer: no checkpoint for "
                                  f"{', '.join(sorted(missing))} (see 'lbscrape checkpoint show')")
        stored = store.update(current, lambda ends: reset(ends, keys, at))
    except LbscrapeError as e:
        return fail(console, e)
    changed = sorted(k for k in current.ends if stored.ends.get(k) != current.ends[k])
    what = f"moved to {isotime(at)}" if at is not None else "forgotten"
    console.out(f"{len(changed)} checkpoints {what} in {store.location}")
    return ExitStatus.OK
