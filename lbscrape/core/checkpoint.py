"""Per-load-balancer checkpoints: the format, the merge rules, and the local file store.

The ConfigMap store is on the Kubernetes side (lbscrape.kube.checkpoint_store).

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
import os
from collections.abc import Callable, Collection, Container, Mapping
from dataclasses import dataclass, field

from lbscrape.core.errors import CheckpointError
from lbscrape.core.model import isotime, parse_isotime

DATA_KEY = "checkpoint.json"
FORMAT = 1


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


def prune(ends: Mapping[str, int], before: int, *keep: Container[str]) -> dict[str, int]:
    """Forget load balancers not seen this run whose checkpoint is older than `before`
    (deleted, or moved to another cluster), so the ConfigMap stays far below 1 MiB. A key
    in any of `keep` stays (a shard's keep holds every other shard's keys)."""
    return {k: v for k, v in ends.items() if v >= before or any(k in c for c in keep)}


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


class SavingStore:
    """save() in terms of update(); stores implement load() and update()."""

    def update(self, base: Checkpoint,
               apply: Callable[[Mapping[str, int]], dict[str, int]]) -> Checkpoint:
        raise NotImplementedError

    def save(self, base: Checkpoint, updates: Mapping[str, int],
             expire_before: int | None = None, keep: Container[str] = ()) -> Checkpoint:
        """Store `updates` on top of `base`, pruning entries older than `expire_before`
        that are not in `keep` or `updates`; returns what was stored."""

        def apply(current: Mapping[str, int]) -> dict[str, int]:
            ends = merge(current, updates)
            if expire_before is not None:
                ends = prune(ends, expire_before, keep, updates)
            return ends

        return self.update(base, apply)


class FileStore(SavingStore):
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
