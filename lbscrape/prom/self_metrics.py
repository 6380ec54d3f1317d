"""lbscrape's own series: each run's health and cost, and each load balancer's freshness.

Pure: a RunReport in, the series out, one sample each stamped with the run's end. Their
names and labels are part of the README's metric contract, like the data's; dashboards
and alerts are built on them (issue 13).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

from lbscrape.core.model import Labels, MetricSpec, Sample, Series

RUN_SERIES = (
    "lbscrape_run_success", "lbscrape_run_exit_code", "lbscrape_run_duration_seconds",
    "lbscrape_run_load_balancers", "lbscrape_run_owners_unresolved",
    "lbscrape_run_samples_written", "lbscrape_run_samples_rejected",
    "lbscrape_run_samples_zero_filled", "lbscrape_run_getmetricdata_calls",
    "lbscrape_run_cloudwatch_metrics_requested",
)
LAG = "lbscrape_load_balancer_lag_seconds"
BUILD_INFO = "lbscrape_build_info"
REASONS = ("out_of_order", "out_of_bounds", "duplicate_timestamp", "too_old", "other")

# How receivers word a refused sample (shared/reference/remote-write.md), per reason. A
# text gets the reason whose marker appears first in it: receivers name the reason before
# the series, whose label values could hold any words.
_MARKERS = (
    # Prometheus and Cortex/AMP (TSDB texts, "err: out of order sample. ..."), Thanos
    # ("add 1 samples: out of order sample"); Prometheus >= 2.54 says "out of bounds:
    # timestamp is too far in the future".
    ("out of order sample", "out_of_order"),
    ("out of bounds", "out_of_bounds"),
    ("duplicate sample for timestamp", "duplicate_timestamp"),
    ("too old sample", "too_old"),
    # Mimir's error ids (err-mimir-...); its too-old id also covers its out-of-bounds.
    ("sample-out-of-order", "out_of_order"),
    ("too-far-in-future", "out_of_bounds"),
    ("sample-duplicate-timestamp", "duplicate_timestamp"),
    ("sample-timestamp-too-old", "too_old"),
    # Cortex's validation and older ingester texts.
    ("sample timestamp out of order", "out_of_order"),
    ("has timestamp too new", "out_of_bounds"),
    ("repeated timestamp but different value", "duplicate_timestamp"),
    ("new-value-for-timestamp", "duplicate_timestamp"),
    ("has timestamp too old", "too_old"),
    ("sample-too-old", "too_old"),
)


def rejection_reason(text: str) -> str:
    """The reason a receiver refused a sample, from its answer: one of REASONS."""
    low = text.lower()
    found = [(i, reason) for marker, reason in _MARKERS if (i := low.find(marker)) >= 0]
    return min(found)[1] if found else "other"


@dataclass(frozen=True)
class Freshness:
    """Where one load balancer's data is complete up to after the run."""

    labels: Mapping[str, str]
    """The labels its data carries (load_balancer_name, load_balancer, owner labels...)."""
    checkpoint: int
    """Seconds: its checkpoint after the run (for one without any, its window's start)."""


@dataclass(frozen=True)
class RunReport:
    """What one run did, as its own series say it."""

    labels: Mapping[str, str]
    """cluster, region and every --label."""
    timestamp_ms: int
    """When the run ended, by the clock: every sample's timestamp."""
    end: float
    """The run's end in the time it acts at (its start, or --now, plus its duration):
    what the lags are measured from. The same as the timestamp but under --now."""
    exit_code: int
    duration: float
    version: str
    load_balancers: Mapping[str, int] = field(default_factory=dict)
    """state (found, written, failed) -> count."""
    owners_unresolved: int = 0
    samples_written: int = 0
    rejected: Mapping[str, int] = field(default_factory=dict)
    """The receiver's answer -> samples it refused with it."""
    samples_zero_filled: int = 0
    getmetricdata_calls: int = 0
    cloudwatch_metrics_requested: int = 0
    freshness: tuple[Freshness, ...] = ()


def build(r: RunReport) -> list[Series]:
    """The run's series in the contract's order, one lag per load balancer (sorted by
    labels), then build info."""
    by_reason = dict.fromkeys(REASONS, 0)
    for text, n in r.rejected.items():
        by_reason[rejection_reason(text)] += n
    values: list[tuple[str, dict[str, str], float]] = [
        ("lbscrape_run_success", {}, 1.0 if r.exit_code == 0 else 0.0),
        ("lbscrape_run_exit_code", {}, r.exit_code),
        ("lbscrape_run_duration_seconds", {}, round(r.duration, 3)),
        *(("lbscrape_run_load_balancers", {"state": s}, r.load_balancers.get(s, 0))
          for s in ("found", "written", "failed")),
        ("lbscrape_run_owners_unresolved", {}, r.owners_unresolved),
        ("lbscrape_run_samples_written", {}, r.samples_written),
        # A series per reason seen; "other" always, so a sum over reasons is never empty.
        *(("lbscrape_run_samples_rejected", {"reason": reason}, n)
          for reason, n in by_reason.items() if n or reason == "other"),
        ("lbscrape_run_samples_zero_filled", {}, r.samples_zero_filled),
        ("lbscrape_run_getmetricdata_calls", {}, r.getmetricdata_calls),
        ("lbscrape_run_cloudwatch_metrics_requested", {}, r.cloudwatch_metrics_requested),
    ]
    ts = r.timestamp_ms
    out = [_series(name, {**r.labels, **extra}, value, ts) for name, extra, value in values]
    for f in sorted(r.freshness, key=lambda f: sorted(f.labels.items())):
        out.append(_series(LAG, f.labels, round(r.end - f.checkpoint, 3), ts))
    out.append(_series(BUILD_INFO, {**r.labels, "version": r.version}, 1.0, ts))
    return out


def _series(name: str, labels: Mapping[str, str], value: float, ts_ms: int) -> Series:
    sorted_labels: Labels = tuple(sorted({**labels, "__name__": name}.items()))
    return Series(sorted_labels, (Sample(ts_ms, float(value)),))


Zeros: TypeAlias = "dict[Labels, array[int]]"
"""Per series (its labels), the sorted timestamps (ms) of the zeros zero-fill added:
machine integers, as a catch-up of many load balancers can add hundreds of thousands."""


def zero_times(data: Mapping[MetricSpec, Sequence[Sample]],
               filled: Mapping[MetricSpec, Sequence[Sample]], labels: Mapping[str, str]
               ) -> Zeros:
    """The zeros zero_fill added to `data` (giving `filled`), by series."""
    out: Zeros = {}
    for spec, samples in filled.items():
        before = data.get(spec, ())
        if len(samples) > len(before):
            have = {s.timestamp_ms for s in before}
            key = tuple(sorted({**labels, "__name__": spec.prom_name}.items()))
            out[key] = array("q", (s.timestamp_ms for s in samples if s.timestamp_ms not in have))
    return out


def zeros_written(zeros: Mapping[str, Zeros], through: Mapping[str, int],
                  refused: Iterable[tuple[Labels, int]]) -> int:
    """The zeros the endpoint accepted: those before their load balancer's accepted prefix
    (`through`, seconds, per load balancer key), less the `refused` (labels, ms)."""
    n = 0
    ends: dict[Labels, tuple[array[int], int]] = {}
    for key, per_series in zeros.items():
        end_ms = through.get(key, 0) * 1000
        for labels, times in per_series.items():
            ends[labels] = (times, end_ms)
            n += bisect_left(times, end_ms)
    for labels, ts in refused:
        times, end_ms = ends.get(labels, (array("q"), 0))
        i = bisect_left(times, ts)
        if ts < end_ms and i < len(times) and times[i] == ts:
            n -= 1
    return n
