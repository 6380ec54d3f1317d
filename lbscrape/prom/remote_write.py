"""Prometheus remote write 1.0: encode a request, send it, retry what can be retried.

What a receiver does shapes this module (see shared/reference/remote-write.md):
- 5xx, 429 and connection errors are retried with capped exponential backoff and
  jitter, honouring Retry-After; other 4xx are never retried. Prometheus 2.42 answers
  some per-sample refusals with 500 ("too old sample"); those are recognised by their
  text and treated as refusals, not outages;
- Prometheus refuses a request whole and does not say which sample it refused; Mimir and
  Cortex store the rest of it and name the (first) sample they refused, which is read
  from the body (RemoteWriteError.named);
- a 2xx answer that is an HTML page (an auth proxy's login) is no acceptance;
- extra headers (a tenant, an API key) go on every request, and a RequestSigner (SigV4
  for Amazon Managed Prometheus, made on the AWS side) signs each attempt last.
What to send, in which order, and what a refusal means is lbscrape.prom.delivery.
"""

from __future__ import annotations

import base64
import calendar
import email.utils
import http.client
import logging
import random
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import snappy

from lbscrape import __version__
from lbscrape.core import headers as header_rules
from lbscrape.core.budget import Budget, unlimited
from lbscrape.core.config import RemoteWriteSettings, read_secret_file, redact_url
from lbscrape.core.errors import ConfigError, LbscrapeError, RemoteWriteError
from lbscrape.core.model import Series
from lbscrape.prom.wire import write_request

log = logging.getLogger(__name__)

MAX_RETRY_DELAY = 30.0
# Statuses that refuse a request because of some of its samples.
SAMPLE_STATUSES = frozenset({400, 409, 413, 422})
# How receivers say a sample is older than, or conflicts with, what the series holds
# (Prometheus, Mimir/Cortex/AMP, Thanos). Read only to classify; logged as received.
STALE_REASONS = ("out of order sample", "out of bounds", "duplicate sample for timestamp",
                 "too old sample", "sample-out-of-order", "sample-timestamp-too-old",
                 "sample-duplicate-timestamp", "sample timestamp out of order",
                 "sample too old", "conflict")


def is_stale_reason(text: str) -> bool:
    low = text.lower()
    return any(r in low for r in STALE_REASONS)


# How Mimir and Cortex name the sample they refused (their ingesters' error texts):
#   Mimir:  "... (err-mimir-sample-out-of-order). The affected sample has timestamp
#            2026-04-14T13:31:08.872Z and is from series {__name__="x", a="b"}"
#   Cortex: "user=fake: err: out of order sample. timestamp=2021-02-25T12:00:00Z,
#            series={__name__="x"}"
_NAMED = (re.compile(r"\.? The affected sample has timestamp (\S+) and is from series "),
          re.compile(r"\.? timestamp=(\S+), series="))
_TIME = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?Z$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|\})')
_UNESCAPE = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}


def named_refusal(text: str) -> tuple[str, tuple[tuple[str, str], ...], int] | None:
    """(reason, sorted labels, timestamp ms) of the sample a Mimir or Cortex refusal
    names; None if the text names none (Prometheus's never do)."""
    for pattern in _NAMED:
        m = pattern.search(text)
        if not m:
            continue
        when = _TIME.match(m.group(1).rstrip(","))
        labels = _parse_labels(text[m.end():])
        if when is None or labels is None:
            return None
        y, mo, d, h, mi, sec, frac = when.groups()
        ms = calendar.timegm((int(y), int(mo), int(d), int(h), int(mi), int(sec))) * 1000
        ms += round(float(frac or 0) * 1000)
        reason = re.sub(r"^.*\buser=[^:\s]*: ", "", text[:m.start()])
        return reason, labels, ms
    return None


def _parse_labels(text: str) -> tuple[tuple[str, str], ...] | None:
    """`name{a="b", ...}` or `{__name__="name", a="b"}`, as Prometheus prints a series."""
    m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)?\{", text)
    if not m:
        return None
    labels = {"__name__": m.group(1)} if m.group(1) else {}
    pos = m.end()
    if text[pos:pos + 1] == "}":
        return tuple(sorted(labels.items())) or None
    while True:
        lm = _LABEL.match(text, pos)
        if not lm:
            return None
        labels[lm.group(1)] = re.sub(r"\\(.)", lambda e: _UNESCAPE.get(e.group(1), e.group(1)),
                                     lm.group(2))
        pos = lm.end()
        if lm.group(3) == "}":
            return tuple(sorted(labels.items()))


def encode(series: Sequence[Series]) -> bytes:
    """WriteRequest protobuf (lbscrape.prom.wire), snappy block format."""
    return bytes(snappy.compress(write_request(series)))


class RequestSigner(Protocol):
    """Signs one request just before it is sent: the headers to send instead of
    `headers` (the signature added). Raises LbscrapeError when it cannot sign."""

    def __call__(self, method: str, url: str, headers: Mapping[str, str],
                 body: bytes) -> Mapping[str, str]: ...


# Headers a signer adds whose values are credentials (a session token, a signature).
SIGNED_SECRETS = ("Authorization", "X-Amz-Security-Token")


@dataclass(frozen=True)
class Credentials:
    """What a Client sends and trusts, read once per run from the settings' files.

    TLS verification is always on (certificate chain and host name); a CA file replaces
    the system's trust store. `secrets` are scrubbed from error text; neither they nor
    the Authorization value are ever logged or shown in a repr. `headers`: the extra
    headers (--remote-write-header, -header-file, -tenant) with their values."""

    authorization: str | None = field(default=None, repr=False)
    ssl_context: ssl.SSLContext = field(default_factory=ssl.create_default_context)
    secrets: tuple[str, ...] = field(default=(), repr=False)
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)


def _extra_headers(s: RemoteWriteSettings) -> tuple[tuple[tuple[str, str], ...],
                                                    tuple[str, ...]]:
    """The extra headers, values from files read now; and the values that are secrets
    (every one from a file, and Authorization-like ones)."""
    out = list(s.headers)
    secrets = [v for k, v in s.headers if header_rules.is_secret(k)]
    for name, path in s.header_files:
        option = "--remote-write-header-file"
        value = read_secret_file(path, option)
        if any(not (32 <= ord(c) < 127 or c == "\t") for c in value):
            raise ConfigError(f"{option}: {path!r} (for {name}) has a line break or a "
                              "character that cannot go in an HTTP header; it must hold "
                              "only the value")
        out.append((name, value))
        secrets.append(value)
    if s.tenant:
        out.append((header_rules.TENANT_HEADER, s.tenant))
    return tuple(out), tuple(secrets)


def load_credentials(s: RemoteWriteSettings) -> Credentials:
    """Read the token, password, header, CA and client certificate files of `s`. Raises
    ConfigError naming the option and the path (never the content)."""
    authorization: str | None = None
    extra, secrets = _extra_headers(s)
    if s.bearer_token_file:
        token = read_secret_file(s.bearer_token_file, "--remote-write-bearer-token-file")
        if any(c.isspace() or not (32 < ord(c) < 127) for c in token):
            raise ConfigError(
                f"--remote-write-bearer-token-file: {s.bearer_token_file!r} has whitespace or "
                "characters that cannot go in an HTTP header; it must hold only the token"
            )
        authorization, secrets = f"Bearer {token}", (*secrets, token)
    elif s.username and s.password_file:
        password = read_secret_file(s.password_file, "--remote-write-password-file")
        cred = base64.b64encode(f"{s.username}:{password}".encode()).decode()
        authorization, secrets = f"Basic {cred}", (*secrets, password, cred)
    ctx = ssl.create_default_context()
    if s.ca_file:
        ca = read_secret_file(s.ca_file, "--remote-write-ca-file")
        try:
            ctx = ssl.create_default_context(cadata=ca)
        except (ssl.SSLError, ValueError):
            raise ConfigError(f"--remote-write-ca-file: {s.ca_file!r} holds no PEM "
                              "certificate") from None
    if s.cert_file and s.key_file:
        if "-----BEGIN CERTIFICATE-----" not in read_secret_file(s.cert_file,
                                                                "--remote-write-cert-file"):
            raise ConfigError(f"--remote-write-cert-file: {s.cert_file!r} holds no PEM "
                              "certificate")
        key = read_secret_file(s.key_file, "--remote-write-key-file")
        if "ENCRYPTED" in key:
            raise ConfigError(f"--remote-write-key-file: {s.key_file!r} is encrypted; give "
                              "the key unencrypted (as a Kubernetes TLS Secret holds it)")
        if "PRIVATE KEY-----" not in key:
            raise ConfigError(f"--remote-write-key-file: {s.key_file!r} holds no PEM "
                              "private key")
        try:  # a password callback, so OpenSSL never prompts on a terminal
            ctx.load_cert_chain(s.cert_file, s.key_file, password=lambda: b"")
        except (ssl.SSLError, OSError):
            raise ConfigError(
                f"--remote-write-key-file: {s.key_file!r} is not a valid key for the "
                f"certificate in --remote-write-cert-file {s.cert_file!r}"
            ) from None
    return Credentials(authorization, ctx, secrets, extra)


class Client:
    """POSTs encoded bodies to one endpoint with the retry policy above."""

    def __init__(self, settings: RemoteWriteSettings, *, budget: Budget | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 jitter: Callable[[], float] = random.random,
                 credentials: Credentials | None = None,
                 signer: RequestSigner | None = None) -> None:
        """`credentials`: already loaded (the CLI loads them while validating options);
        by default read from the settings' files now. Raises ConfigError if unreadable.
        `signer`: signs every attempt (SigV4); none for the other kinds of auth."""
        self.settings = settings
        self.budget = budget or unlimited()
        self._sleep = sleep
        self._jitter = jitter
        creds = credentials or load_credentials(settings)
        self._ssl = creds.ssl_context
        self._auth = creds.authorization
        self._secrets = creds.secrets
        self._headers = creds.headers
        self._signer = signer
        self._signed: tuple[str, ...] = ()  # the last signature's secrets
        self.requests = 0
        # urllib does not send URL userinfo; turn it into basic auth, keep it out of logs.
        parts = urllib.parse.urlsplit(settings.url)
        self._url = settings.url
        if parts.username is not None:
            user = urllib.parse.unquote(parts.username)
            password = urllib.parse.unquote(parts.password or "")
            cred = base64.b64encode(f"{user}:{password}".encode()).decode()
            self._auth = "Basic " + cred
            self._secrets += tuple(x for x in (password, cred) if x)
            host = parts.hostname or ""
            netloc = f"[{host}]" if ":" in host else host
            if parts.port:
                netloc += f":{parts.port}"
            self._url = urllib.parse.urlunsplit(parts._replace(netloc=netloc))

    def post(self, body: bytes) -> None:
        s = self.settings
        for attempt in range(s.retries + 1):
            try:
                return self._post_once(body)
            except _Retry as r:
                delay = s.backoff * 2**attempt * (0.5 + self._jitter())
                if r.retry_after is not None:
                    delay = max(delay, r.retry_after)
                delay = min(delay, MAX_RETRY_DELAY)
                if attempt == s.retries or delay >= self.budget.remaining():
                    raise RemoteWriteError(
                        f"remote write to {redact_url(s.url)} failed after {attempt + 1} "
                        f"attempts: {r.reason}", status=r.status, retryable=True
                    ) from None
                log.info("remote write: %s; retrying in %.1fs", r.reason, delay)
                self._sleep(delay)
        raise AssertionError("unreachable")

    def _post_once(self, body: bytes) -> None:
        s = self.settings
        headers = {
            "Content-Encoding": "snappy",
            "Content-Type": "application/x-protobuf",
            "User-Agent": f"lbscrape/{__version__}",
            "X-Prometheus-Remote-Write-Version": "0.1.0",
        }
        headers.update(self._headers)
        if self._auth:
            headers["Authorization"] = self._auth
        if self._signer:
            headers = self._sign(headers, body)
        req = urllib.request.Request(self._url, data=body, method="POST", headers=headers)
        self.requests += 1
        try:
            timeout = max(1.0, min(s.timeout, self.budget.remaining()))
            with urllib.request.urlopen(req, timeout=timeout, context=self._ssl) as resp:
                body = resp.read()
                # A receiver answers 2xx with an empty body; an HTML page is a proxy's or
                # a UI's, and the samples did not land: never move a checkpoint on it.
                if _is_html(body, resp.headers.get_content_type()):
                    raise RemoteWriteError(
                        f"remote write to {redact_url(s.url)} answered HTTP {resp.status} with "
                        f"an HTML page, not a remote-write response (a login page?) "
                        f"{NOT_AN_ENDPOINT}", status=resp.status)
        except urllib.error.HTTPError as e:
            text = self._scrub(_body_text(e))
            stale = is_stale_reason(text)
            if e.code in SAMPLE_STATUSES or (e.code >= 500 and stale):
                named = named_refusal(text) if e.code in SAMPLE_STATUSES else None
                raise RemoteWriteError(
                    f"HTTP {e.code}: {text}", status=e.code, sample=True, stale=stale,
                    named=((named[1], named[2]),) if named else (),
                    reason=f"HTTP {e.code}: {named[0]}" if named else "") from None
            if e.code == 429 or e.code >= 500:
                raise _Retry(f"HTTP {e.code}: {text}", e.code,
                             _retry_after(e.headers.get("Retry-After"))) from None
            hint = SIGV4_REFUSED if self._signer and e.code in (401, 403) else ""
            raise RemoteWriteError(
                f"remote write to {redact_url(s.url)} refused: HTTP {e.code}: {text}{hint}",
                status=e.code,
            ) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            # HTTPException: not an HTTP server, or a response cut short.
            reason = getattr(e, "reason", None) or f"{type(e).__name__}: {e}"
            tls = _tls_refusal(reason if isinstance(reason, ssl.SSLError) else e)
            if tls:  # a certificate problem does not go away by retrying
                raise RemoteWriteError(f"remote write to {redact_url(s.url)}: {tls}") from None
            raise _Retry(f"connection error: {reason}", None, None) from None

    def _sign(self, headers: dict[str, str], body: bytes) -> dict[str, str]:
        """The signed headers; the Host header is fixed first, so what is signed is what
        urllib sends. A failure to sign (no credentials) is the endpoint's failure."""
        assert self._signer is not None
        headers["Host"] = urllib.parse.urlsplit(self._url).netloc
        try:
            signed = dict(self._signer("POST", self._url, headers, body))
        except LbscrapeError as e:
            raise RemoteWriteError(f"remote write to {redact_url(self._url)}: {e}") from None
        self._signed = tuple(v for k in SIGNED_SECRETS if (v := signed.get(k)))
        return signed

    def _scrub(self, text: str) -> str:
        """Error text from the endpoint, with any credential it echoed replaced."""
        for secret in (*self._secrets, *self._signed):
            text = text.replace(secret, "***")
        return text


def _tls_refusal(e: BaseException) -> str | None:
    """A one-line explanation if `e` is a TLS certificate failure on either side."""
    if isinstance(e, ssl.SSLCertVerificationError):
        why = (e.verify_message or str(e)).rstrip(".")
        if e.verify_code in (62, 64):  # X509_V_ERR_HOSTNAME_MISMATCH, _IP_ADDRESS_MISMATCH
            return (f"TLS certificate verification failed: {why}; use a host name the "
                    "certificate names in --remote-write-url")
        return (f"TLS certificate verification failed: {why}; if the endpoint's certificate "
                "is issued by a private CA, give it with --remote-write-ca-file")
    if isinstance(e, ssl.SSLError) and any(w in (e.reason or "") for w in
                                           ("CERTIFICATE", "UNKNOWN_CA")):
        return (f"the endpoint refused the TLS handshake ({e.reason}); it may require a "
                "client certificate: check --remote-write-cert-file and --remote-write-key-file")
    return None


class _Retry(Exception):
    def __init__(self, reason: str, status: int | None, retry_after: float | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


SIGV4_REFUSED = ("; check the AWS credentials, the signing region (--remote-write-sigv4-region) "
                 "and that the role may aps:RemoteWrite on the workspace (see "
                 "cronjob/iam-policy.json)")
NOT_AN_ENDPOINT = "(is the URL the remote-write endpoint, e.g. .../api/v1/write?)"


def _is_html(body: bytes, content_type: str = "") -> bool:
    return content_type == "text/html" or body.lstrip().lower().startswith(
        (b"<!doctype", b"<html"))


def _body_text(e: urllib.error.HTTPError) -> str:
    try:
        raw = e.read(4096)  # room for the series a Mimir or Cortex refusal names
    except OSError:
        raw = b""
    text = " ".join(raw.decode("utf-8", "replace").split())
    if _is_html(raw):
        return f"an HTML page {NOT_AN_ENDPOINT}"
    return text or (e.reason if isinstance(e.reason, str) else "no body")


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
