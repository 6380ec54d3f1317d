"""Per-load-balancer checkpoints, kept in one ConfigMap.

The checkpoint of a load balancer is the end of the last window whose samples the
remote-write endpoint accepted. It moves only forward, and only after acceptance, so a
crash anywhere repeats the same window with the same values.

Stored as data["checkpoint.json"], serialised with sorted keys so that an unchanged
checkpoint is byte-identical. Updates use the ConfigMap's resourceVersion
(compare-and-swap); on a conflict the stored state is re-read and merged, keeping the
later time per load balancer.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from kubernetes import client as k8s

from lbscrape.config import CheckpointLocation
from lbscrape.errors import CheckpointError, KubeError
from lbscrape.kube import call_api
from lbscrape.model import isotime, parse_isotime

log = logging.getLogger(__name__)

DATA_KEY = "checkpoint.json"
FORMAT = 1
CAS_ATTEMPTS = 5


@dataclass(frozen=True)
class Checkpoint:
    ends: Mapping[str, int] = field(default_factory=dict)
    resource_version: str | None = None


def encode(ends: Mapping[str, int]) -> str:
    doc = {"format": FORMAT, "load_balancers": {k: isotime(v) for k, v in ends.items()}}
    return json.dumps(doc, sort_keys=True, indent=1)


def decode(text: str, where: str, kind: str = "ConfigMap") -> dict[str, int]:
    """`kind` and `where` name the store in errors: ConfigMap ns/name, or file path."""
    reset = f"fix it, or delete the {kind} {where} to start again from --initial-lookback"
    part = f"key {DATA_KEY}" if kind == "ConfigMap" else "its content"
    try:
        doc = json.loads(text)
        version = doc.get("format")
        if type(version) is not int or version != FORMAT:
            raise CheckpointError(
                f"checkpoint {kind} {where}: format {version!r} is not known to this "
                f"lbscrape (expects {FORMAT}); upgrade lbscrape, or {reset}"
            )
        return {str(k): parse_isotime(v) for k, v in doc["load_balancers"].items()}
    except CheckpointError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise CheckpointError(
            f"checkpoint {kind} {where}: {part} cannot be parsed ({e}); {reset}"
        ) from e


def prune(ends: Mapping[str, int], before: int, keep: Collection[str]) -> dict[str, int]:
    """Forget load balancers not seen this run whose checkpoint is older than `before`
    (deleted, or moved to another cluster), so the ConfigMap stays far below 1 MiB."""
    return {k: v for k, v in ends.items() if v >= before or k in keep}


def reset(ends: Mapping[str, int], keys: Collection[str] | None, to: int | None
          ) -> dict[str, int]:
    """Move the checkpoints of `keys` (all when None) back to `to`, or forget them so the
    next run starts from --initial-lookback."""
    chosen = set(ends) if keys is None else set(keys)
    out = {k: v for k, v in ends.items() if k not in chosen}
    if to is not None:
        out.update({k: to for k in chosen})
    return out


def merge(current: Mapping[str, int], updates: Mapping[str, int]) -> dict[str, int]:
    """Latest time per load balancer wins."""
    merged = dict(current)
    for key, end in updates.items():
        merged[key] = max(end, merged.get(key, end))
    return merged


class _Saving:
    def update(self, base: Checkpoint,
               apply: Callable[[Mapping[str, int]], dict[str, int]]) -> Checkpoint:
        raise NotImplementedError

    def save(self, base: Checkpoint, updates: Mapping[str, int],
             expire_before: int | None = None, keep: Collection[str] = ()) -> Checkpoint:
        """Store `updates` on top of `base`, pruning entries older than `expire_before`
        that are not in `keep` or `updates`; returns what was stored."""

        def apply(current: Mapping[str, int]) -> dict[str, int]:
            ends = merge(current, updates)
            if expire_before is not None:
                ends = prune(ends, expire_before, {*keep, *updates})
            return ends

        return self.update(base, apply)


class FileStore(_Saving):
    """A local JSON file, for laptops and CI: same format as the ConfigMap's key.

    Read-modify-write happens under an exclusive lock on PATH.lock, and the new content
    replaces the file atomically, so overlapping runs cannot corrupt it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.location = path

    def load(self) -> Checkpoint:
        try:
            with open(self.path, encoding="utf-8") as f:
                return Checkpoint(decode(f.read(), self.path, "file"))
        except FileNotFoundError:
            return Checkpoint()
        except OSError as e:
            raise CheckpointError(f"cannot read checkpoint file {self.path}: {e.strerror}") from e

    def update(self, base: Checkpoint,
               apply: Callable[[Mapping[str, int]], dict[str, int]]) -> Checkpoint:
        try:
            with open(f"{self.path}.lock", "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                ends = apply(self.load().ends)
                tmp = f"{self.path}.tmp"
                with open(tmp, "w", encoding="utf-8") as f:
                    f.write(encode(ends) + "\n")
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
                return Checkpoint(ends)
        except OSError as e:
            raise CheckpointError(f"cannot write checkpoint file {self.path}: {e.strerror}") from e


class ConfigMapStore(_Saving):
    def __init__(self, api: k8s.ApiClient, location: CheckpointLocation,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._core = k8s.CoreV1Api(api)
        self._sleep = sleep
        self.location = location
        self._object: k8s.V1ConfigMap | None = None  # as last read, to keep its metadata

    def load(self) -> Checkpoint:
        loc = self.location
        try:
            cm = call_api(f"get configmap {loc}", self._core.read_namespaced_config_map,
                          loc.name, loc.namespace)
        except KubeError as e:
            if e.status == 404:
                return Checkpoint()
            raise CheckpointError(f"cannot read checkpoint: {e}") from e
        text = (cm.data or {}).get(DATA_KEY)
        ends = decode(text, str(loc)) if text is not None else {}
        self._object = cm
        return Checkpoint(ends, _rv(cm))

    def update(self, base: Checkpoint,
               apply: Callable[[Mapping[str, int]], dict[str, int]]) -> Checkpoint:
        """Store apply(stored checkpoints), compare-and-swap; on a conflict re-read and
        apply again. Returns what was stored."""
        loc = self.location
        current = base
        backoff = 0.25
        last: KubeError | None = None
        for _ in range(CAS_ATTEMPTS):
            ends = apply(current.ends)
            stored_cm = self._object
            if current.resource_version is not None and stored_cm is not None \
                    and _rv(stored_cm) == current.resource_version:
                # Replace keeps labels, annotations and other keys people or kubectl added.
                body = stored_cm
                body.data = {**(body.data or {}), DATA_KEY: encode(ends)}
            else:
                body = k8s.V1ConfigMap(
                    metadata=k8s.V1ObjectMeta(
                        name=loc.name, namespace=loc.namespace,
                        resource_version=current.resource_version,
                        labels={"app.kubernetes.io/managed-by": "lbscrape"},
                    ),
                    data={DATA_KEY: encode(ends)},
                )
            try:
                if current.resource_version is None:
                    stored = call_api(f"create configmap {loc}",
                                      self._core.create_namespaced_config_map, loc.namespace, body)
                else:
                    stored = call_api(f"update configmap {loc}",
                                      self._core.replace_namespaced_config_map,
                                      loc.name, loc.namespace, body)
                return Checkpoint(ends, _rv(stored))
            except KubeError as e:
                last = e
                if e.status == 409:
                    log.info("checkpoint %s changed underneath (409); re-reading and merging", loc)
                    current = self.load()
                elif e.status is None or e.status >= 500 or e.status == 429:
                    # The samples are already written: a lost checkpoint means the next run
                    # repeats the window, which is safe but costly, so try a little harder.
                    log.info("storing checkpoint %s: %s; retrying", loc, e)
                    self._sleep(backoff)
                    backoff *= 2
                else:
                    raise CheckpointError(f"cannot store checkpoint: {e}") from e
        raise CheckpointError(
            f"cannot store checkpoint {loc} after {CAS_ATTEMPTS} attempts: {last}"
        )


def _rv(cm: k8s.V1ConfigMap) -> str | None:
    return cm.metadata.resource_version if cm.metadata else None
