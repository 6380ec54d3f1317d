"""OpenMetrics text of series, as `promtool tsdb create-blocks-from openmetrics` reads it."""

from __future__ import annotations

import math
import operator
from itertools import repeat

from lbscrape.core.model import Series
from lbscrape.prom.series import selector

EOF = b"# EOF\n"


def encode(series: Series) -> bytes:
    """One line per sample: the selector, the value and the timestamp in seconds."""
    sel = selector(series.labels)
    if not series.samples:
        return b""
    stamps, values = zip(*series.samples, strict=True)
    if all(map(math.isfinite, values)) and not any(map(operator.mod, stamps, repeat(1000))):
        # The usual series (a backfill writes millions): whole seconds, finite values.
        line = (sel.replace("%", "%%") + " %r %d\n").encode().__mod__
        return b"".join(map(line, zip(values, map(operator.floordiv, stamps, repeat(1000)),
                                      strict=True)))
    lines = []
    for x in series.samples:
        v = repr(x.value)
        secs, ms = divmod(x.timestamp_ms, 1000)
        lines.append(f"{sel} {_SPECIAL.get(v, v)} {secs}" if not ms
                     else f"{sel} {_SPECIAL.get(v, v)} {secs}.{ms:03d}")
    lines.append("")
    return "\n".join(lines).encode()


# The values whose Python repr is not OpenMetrics'.
_SPECIAL = {"nan": "NaN", "inf": "+Inf", "-inf": "-Inf"}
