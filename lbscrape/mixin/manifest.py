"""What `lbscrape mixin` wrote into an output directory, so that the next run can remove
what it no longer writes (a dropped dashboard, the recording rules of a fleet mixin
regenerated for one owner) and nothing else.

The manifest is `DIR/.lbscrape-mixin.sha256`, in `sha256sum` format (so `sha256sum -c`
checks it), and only ever names paths under DIR. A file is removed only when the manifest
names it, this run does not write it, and its content is still what lbscrape wrote (its
hash matches): a file someone changed or put there is theirs. Pure functions; the flow
reads and writes the files.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Mapping

from lbscrape.core.options import MIXIN_MANIFEST

MANIFEST = MIXIN_MANIFEST
_HEADER = "# Files `lbscrape mixin` wrote here (sha256sum format); it removes those it " \
          "no longer writes.\n"


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def render(written: Mapping[str, str]) -> str:
    """{relative path: text} -> the manifest's text."""
    return _HEADER + "".join(f"{digest(t)}  {p}\n" for p, t in sorted(written.items()))


def _safe(path: str) -> bool:
    """A relative path that stays inside DIR: never absolute, never through '..'."""
    norm = posixpath.normpath(path)
    return bool(path) and norm == path and not path.startswith("/") and \
        norm != ".." and not norm.startswith("../") and path != MANIFEST


def parse(text: str) -> dict[str, str]:
    """The manifest's text -> {relative path: sha256}; lines that are not a hash and a safe
    path are ignored (a hand-edited manifest makes lbscrape remove less, never more)."""
    out = {}
    for line in text.splitlines():
        h, sep, path = line.partition("  ")
        if sep and len(h) == 64 and all(c in "0123456789abcdef" for c in h) and _safe(path):
            out[path] = h
    return out


def stale(previous: Mapping[str, str], written: Mapping[str, str]) -> list[str]:
    """Paths the previous manifest names that this run does not write, in order."""
    return sorted(p for p in previous if p not in written)
