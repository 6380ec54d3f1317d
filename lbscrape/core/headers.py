"""Extra remote-write headers (--remote-write-header, --remote-write-header-file,
--remote-write-tenant): parsing and the rules they must keep.

Receivers put tenancy and API keys in headers (Mimir and Cortex `X-Scope-OrgID`, Thanos
`THANOS-TENANT`, vendors' API keys). A header value may be a credential, so messages
name headers, never their values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from lbscrape.core.errors import ConfigError

# RFC 9110 token: the characters a field name may have.
_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Mimir's tenant ID rule (docs: "About tenant IDs"): up to 150 of these characters.
_TENANT = re.compile(r"^[A-Za-z0-9!_.*'()-]{1,150}$")
TENANT_HEADER = "X-Scope-OrgID"
# What remote write 1.0 fixes and what the HTTP client sets itself: never the user's.
ALWAYS_RESERVED = ("Content-Encoding", "Content-Type", "X-Prometheus-Remote-Write-Version",
                   "User-Agent", "Host", "Content-Length", "Connection", "Transfer-Encoding")
# Header names whose values are credentials: kept out of error text like tokens are.
_SECRET_NAMES = ("authorization", "proxy-authorization", "cookie")


def parse_header(text: str, option: str) -> tuple[str, str]:
    """'NAME=VALUE' -> (name, value stripped). The value is never in a message."""
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep:
        hint = f"; write {text.partition(':')[0].strip()}=VALUE" if ":" in text else ""
        raise ConfigError(f"{option}: an entry is not NAME=VALUE (e.g. X-Scope-OrgID=team-a)"
                     f"{hint}")
    if not _NAME.match(name):
        raise ConfigError(f"{option}: {name!r} is not an HTTP header name (letters, digits and "
                     "-, e.g. X-Scope-OrgID)")
    return name, value.strip()


def check_value(name: str, value: str, option: str) -> str:
    """A value that can go in an HTTP header: printable ASCII, no line break."""
    if not value:
        raise ConfigError(f"{option}: the value of {name} is empty")
    if any(not (32 <= ord(c) < 127 or c == "\t") for c in value):
        raise ConfigError(f"{option}: the value of {name} has a line break or a character that "
                     "cannot go in an HTTP header (printable ASCII only)")
    return value


def parse_tenant(text: str) -> str:
    tenant = text.strip()
    if not _TENANT.match(tenant) or tenant in (".", ".."):
        raise ConfigError("--remote-write-tenant: a tenant ID is 1 to 150 letters, digits and "
                     "!-_.*'() (not '.' or '..'), as Mimir and Cortex take it")
    return tenant


def check_names(given: Iterable[tuple[str, str]], reserved: dict[str, str],
                sigv4: bool = False) -> None:
    """No header twice, none that lbscrape sets. `given`: (option, name);
    `reserved`: lower-case name -> what sets it; with SigV4 every X-Amz-* is its."""
    seen: dict[str, str] = {}
    for option, name in given:
        low = name.lower()
        if low in reserved:
            raise ConfigError(f"{option}: {name} is set by {reserved[low]} and cannot be "
                         "overridden")
        if low.startswith("x-amz-") and sigv4:
            raise ConfigError(f"{option}: {name} is set by --remote-write-sigv4 (X-Amz-* "
                         "headers are part of the signature)")
        if low in seen:
            raise ConfigError(f"{option}: {name} is also given by {seen[low]}; give it once")
        seen[low] = option


def is_secret(name: str) -> bool:
    return name.lower() in _SECRET_NAMES

