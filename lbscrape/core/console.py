"""Where a command's output goes: lines for stdout and stderr, and a yes/no question.

The flows print through this, so they need no click and tests can capture them."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass


def _err(line: str) -> None:
    print(line, file=sys.stderr)


@dataclass(frozen=True)
class Console:
    out: Callable[[str], object] = print
    err: Callable[[str], object] = _err
    confirm: Callable[[str], bool] = lambda question: False
    """Asked only on a terminal; the default answers no."""


def table(rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows as left-aligned columns two spaces apart, the first row the heading."""
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in rows]


def ago(seconds: int) -> str:
    """A lag for people: 4m05s, 2h03m; 'ahead' when negative."""
    if seconds < 0:
        return "ahead"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else \
        f"{seconds // 60}m{seconds % 60:02d}s"


def fail(console: Console, e: Exception) -> int:
    """One line on stderr; bad input is exit 2, anything else exit 1."""
    from lbscrape.core.errors import ConfigError, ExitStatus

    console.err(f"lbscrape: error: {e}")
    return ExitStatus.USAGE if isinstance(e, ConfigError) else ExitStatus.ERROR
