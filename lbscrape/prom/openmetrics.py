"""OpenMetrics text of series, as `promtool tsdb create-blocks-from openmetrics` reads it."""

from __future__ import annotations

from lbscrape.core.model import Sample, Series
from lbscrape.prom.series import selector

EOF = b"# EOF\n"


def encode(series: Series) -> bytes:
    """One line per sample: the selector, the value and the timestamp in seconds."""
    sel = selector(series.labels).encode()
    return b"".join(sel + b" " + _number(x) + b"\n" for x in series.samples)


def _number(x: Sample) -> bytes:
    v = x.value
    value = "NaN" if v != v else "+Inf" if v == float("inf") else "-Inf" if v == -float(
        "inf") else repr(v)
    secs, ms = divmod(x.timestamp_ms, 1000)
    ts = str(secs) if not ms else f"{secs}.{ms:03d}"
    return f"{value} {ts}".encode()
