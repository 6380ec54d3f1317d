"""Progress of a backfill, kept in a local JSON file after every request, for --resume."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from lbscrape.core.catalog import FillPlan
from lbscrape.core.checkpoint import FileStore
from lbscrape.core.errors import ConfigError, LbscrapeError
from lbscrape.core.model import MetricSpec, Window
from lbscrape.flows.backfill.plan import TG_KEY_SEPARATOR, Target

log = logging.getLogger(__name__)


class BackfillStopped(LbscrapeError):
    """Nothing more can be written now; the state file says where to carry on."""


STATE_FORMAT = 2  # 2: partial progress counted in samples


def carry_checkpoint(store: FileStore, state: State) -> int:
    """Move a local checkpoint to the end of a complete backfill for each load balancer
    whose checkpoint is missing or inside the range, so `run --checkpoint-file` carries on
    from there. One that ends before the range start keeps its place: moving it would
    hide the gap between from run's catch-up."""
    current = store.load()
    # A target group's target shares its load balancer's checkpoint (key "LB|TG").
    lbs = {t.key.split(TG_KEY_SEPARATOR)[0] for t in state.targets}
    updates = {key: state.window.end for key in sorted(lbs)
               if current.ends.get(key, state.window.start) >= state.window.start}
    if updates:
        store.save(current, updates)
    return len(updates)


class CorruptState(ConfigError):
    """The state file cannot be used; the message says how to start over."""


@dataclass
class State:
    """A backfill's plan inputs and progress, kept in a local JSON file."""

    window: Window
    targets: tuple[Target, ...]
    output: str
    """Where the samples go, e.g. 'remote-write https://host/api/v1/write' (redacted)."""
    done: set[int] = field(default_factory=set)
    """Calls whose samples were all written."""
    partial: tuple[int, int] | None = None
    """(call, samples sent) of the call being written when it stopped. Counted in samples,
    not requests, so a resume with another --remote-write-max-samples skips exactly."""
    file_offset: int = 0
    """--output: bytes of the file that belong to written calls."""
    samples_written: int = 0
    samples_rejected: int = 0
    _targets_json: str = field(default="", compare=False, repr=False)

    def to_json(self) -> str:
        # Saved after every request: the targets (most of the file, and fixed) are
        # encoded once.
        if not self._targets_json:
            self._targets_json = json.dumps([
                {"key": t.key, "name": t.name, "dimensions": [list(d) for d in t.dimensions],
                 "labels": dict(t.labels),
                 "specs": [[s.namespace, s.metric, s.stat, s.prom_name] for s in t.specs],
                 "fill": _fill_json(t)}
                for t in self.targets
            ], sort_keys=True, separators=(",", ":"))
        doc = {
            "format": STATE_FORMAT,
            "window": [self.window.start, self.window.end, self.window.period],
            "output": self.output,
            "done": sorted(self.done),
            "partial": list(self.partial) if self.partial else None,
            "file_offset": self.file_offset,
            "samples_written": self.samples_written,
            "samples_rejected": self.samples_rejected,
        }
        head = json.dumps(doc, sort_keys=True, separators=(",", ":"))
        return f'{head[:-1]},"targets":{self._targets_json}}}'

    @classmethod
    def from_json(cls, text: str, path: str) -> State:
        fix = f"delete {path} to start the backfill over"
        try:
            doc = json.loads(text)
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
            if "load_balancers" in doc:  # lbscrape run's checkpoint file: never delete that
                raise CorruptState(f"{path} is a checkpoint file of 'lbscrape run', not a "
                                   "backfill state file; pass another --state-file")
            if doc.get("format") != STATE_FORMAT:
                raise CorruptState(f"state file {path} has format {doc.get('format')!r}, "
                                   f"this lbscrape reads format {STATE_FORMAT}; {fix}")
            start, end, period = (int(x) for x in doc["window"])
            targets = tuple(_target_from_json(t) for t in doc["targets"])
            partial = doc.get("partial")
            return cls(Window(start, end, period), targets, str(doc["output"]),
                       {int(i) for i in doc["done"]},
                       (int(partial[0]), int(partial[1])) if partial else None,
                       int(doc["file_offset"]), int(doc["samples_written"]),
                       int(doc["samples_rejected"]))
        except CorruptState:
            raise
        except (ValueError, KeyError, TypeError, IndexError) as e:
            raise CorruptState(f"state file {path} cannot be read ({e}); {fix}") from None


def _fill_json(t: Target) -> dict[str, Any] | None:
    """The fill plan as positions in t.specs, so a resumed backfill fills the same way."""
    if t.fill is None:
        return None
    return {"traffic": t.specs.index(t.fill.traffic) if t.fill.traffic else None,
            "sparse": [t.specs.index(s) for s in t.fill.sparse]}


def _target_from_json(t: dict[str, Any]) -> Target:
    specs = tuple(MetricSpec(*map(str, s)) for s in t["specs"])
    fill = t.get("fill")
    return Target(
        t["key"], t["name"], tuple((str(a), str(b)) for a, b in t["dimensions"]),
        tuple(sorted((str(k), str(v)) for k, v in t["labels"].items())), specs,
        FillPlan(specs[fill["traffic"]] if fill["traffic"] is not None else None,
                 tuple(specs[i] for i in fill["sparse"])) if fill else None)


class StateFile:
    """The JSON file, replaced atomically on every save so a crash leaves the last one."""

    def __init__(self, path: str) -> None:
        self.path = path

    def exists(self) -> bool:
        return os.path.exists(self.path)

    def load(self) -> State:
        try:
            with open(self.path, encoding="utf-8") as f:
                return State.from_json(f.read(), self.path)
        except FileNotFoundError:
            raise ConfigError(f"--resume: no state file {self.path}; start the backfill "
                              "without --resume (or pass the --state-file it used)") from None
        except OSError as e:
            raise ConfigError(f"--state-file: cannot read {self.path}: {e.strerror}") from None

    def remove(self) -> None:
        """A complete backfill leaves nothing to resume (and nothing to block the next)."""
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass

    def save(self, state: State) -> None:
        tmp = f"{self.path}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(state.to_json() + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as e:
            raise BackfillStopped(f"cannot write state file {self.path}: {e.strerror}") from e
