"""Run configuration: frozen dataclasses, and the parsers that validate raw option text.

Every parser raises ConfigError with a message that names the option, so the CLI can
stop with exit 2 before anything is fetched or written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from lbscrape.core import headers
from lbscrape.core.catalog import DEFAULT, Catalog
from lbscrape.core.errors import ConfigError
from lbscrape.core.shard import Shard

# Labels lbscrape sets itself; a static label may not replace them.
CONTRACT_LABELS = frozenset(
    {"__name__", "load_balancer_name", "load_balancer", "cluster", "region", "namespace",
     "ingress", "service", "ingress_group"}
)
# Names reserved for labels lbscrape sets or will set (IngressGroups, target groups): no
# --label, --label-from or lbscrape.io/labels annotation may take them either.
RESERVED_LABELS = CONTRACT_LABELS | frozenset(
    {"ingress_group", "target_group", "target_namespace", "target_service", "target_port"}
)
# lbscrape's own series and names (lbscrape_run_*, lbscrape_smoke, ...): no label given
# to it may take the prefix either, and no catalog name has it (issue 13).
RESERVED_PREFIX = "lbscrape_"


# Longest label value lbscrape writes, in UTF-8 bytes. Prometheus has no limit, but
# receivers do (Mimir and Cortex refuse values over 2048 by default, the whole series);
# half of that leaves room, and no dashboard needs a longer value.
MAX_LABEL_VALUE_BYTES = 1024
LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)?.*@")
_DURATION_RE = re.compile(r"(\d+)([a-z]*)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class WindowSettings:
    settle_delay: int
    """Seconds a period must have been over before its datapoint is written."""
    period: int
    """CloudWatch period in seconds (a multiple of 60)."""
    initial_lookback: int
    """How far back the first run of a new load balancer starts, in seconds."""
    max_catchup: int
    """The oldest a window may start, in seconds before its end."""


@dataclass(frozen=True)
class RemoteWriteSettings:
    url: str
    timeout: float = 10.0
    """Seconds for one HTTP request."""
    retries: int = 3
    """Retries of one request on 5xx, 429 and connection errors."""
    backoff: float = 0.5
    """First retry delay in seconds; doubles each time, with jitter."""
    max_samples_per_request: int = 20_000
    # Credentials and TLS come from files (a mounted Kubernetes Secret); the settings hold
    # only paths, so they can be printed. See validate_remote_write_auth.
    bearer_token_file: str | None = None
    username: str | None = None
    password_file: str | None = None
    ca_file: str | None = None
    """PEM CA bundle that replaces the system's for verifying the endpoint."""
    cert_file: str | None = None
    """PEM client certificate for mTLS (with key_file)."""
    key_file: str | None = None
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    """Extra headers sent on every request (--remote-write-header); a value may be a
    credential, so it is kept out of a repr."""
    header_files: tuple[tuple[str, str], ...] = ()
    """(header, path): a header whose value is read from a file (--remote-write-header-file)."""
    tenant: str | None = None
    """--remote-write-tenant, sent as X-Scope-OrgID."""
    sigv4: bool = False
    """Sign every request with AWS SigV4 for the service `aps` (Amazon Managed Prometheus)."""
    sigv4_region: str | None = None
    """The signing region as given; see sigv4_region()."""
    sigv4_role_arn: str | None = None
    """A role to assume (from boto3's credentials) before signing."""


# CloudWatch's GetMetricData quotas per account and region: calls per second
# (adjustable in Service Quotas) and estimated datapoints per second (not adjustable),
# the latter higher for calls whose StartTime is more than 3 hours ago.
GMD_TPS_QUOTA = 50
GMD_DPS_QUOTA_RECENT = 180_000
GMD_DPS_QUOTA_OLD = 396_000


@dataclass(frozen=True)
class CloudWatchLimits:
    """How hard lbscrape may use GetMetricData. The quotas are shared with every other
    tool of the account and region, so the defaults take half of them."""

    concurrency: int = 10
    """Calls in flight at most."""
    max_tps: float = GMD_TPS_QUOTA / 2
    """Calls per second at most."""
    dps_share: float = 0.5
    """Estimated datapoints per second at most, as a share of the quota for the call's
    StartTime; used unless `dps` is set."""
    dps: int | None = None
    """Estimated datapoints per second at most, capped at the quota."""

    def describe_dps(self) -> str:
        return str(self.dps) if self.dps else f"{self.dps_share * 100:g}%"

    def max_dps(self, recent: bool) -> float:
        quota = GMD_DPS_QUOTA_RECENT if recent else GMD_DPS_QUOTA_OLD
        return float(min(self.dps, quota)) if self.dps else quota * self.dps_share


def parse_cloudwatch_limits(concurrency: int, max_tps: float, max_dps: str
                            ) -> CloudWatchLimits:
    """--cloudwatch-max-dps is a share of the quota ('50%') or a number ('90000')."""
    if not 1 <= concurrency <= 64:
        raise ConfigError(f"--cloudwatch-concurrency: {concurrency} is not between 1 and 64")
    if not max_tps > 0:
        raise ConfigError(f"--cloudwatch-max-tps: {max_tps} is not positive (CloudWatch's "
                          f"quota is {GMD_TPS_QUOTA} calls per second unless raised)")
    text = max_dps.strip()
    try:
        number = float(text.removesuffix("%"))
    except ValueError:
        number = -1
    if text.endswith("%") and 0 < number <= 100:
        return CloudWatchLimits(concurrency, max_tps, number / 100)
    if not text.endswith("%") and number >= 1 and number == int(number):
        return CloudWatchLimits(concurrency, max_tps, dps=int(number))
    raise ConfigError(f"--cloudwatch-max-dps: cannot read {max_dps!r}; give a share of "
                      f"CloudWatch's quota ({GMD_DPS_QUOTA_RECENT:,} datapoints per second "
                      f"for data of the last 3 hours, {GMD_DPS_QUOTA_OLD:,} for older), "
                      "e.g. 50%, or a number of datapoints per second, e.g. 90000")


@dataclass(frozen=True)
class CheckpointLocation:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class RunConfig:
    cluster: str
    region: str
    window: WindowSettings
    remote_write: RemoteWriteSettings | None  # None only with dry_run
    checkpoint: CheckpointLocation
    static_labels: tuple[tuple[str, str], ...] = ()
    dry_run: bool = False
    checkpoint_file: str | None = None
    """A local JSON file instead of the ConfigMap (laptops, CI)."""
    checkpoint_retention: int = 7 * 86400
    """Checkpoints of load balancers not seen for this long are dropped."""
    catalog: Catalog = DEFAULT
    """What is fetched per load balancer type (the defaults, or --metrics-config)."""
    zero_fill: bool = True
    """Write 0 for a sparse counter's missing datapoint in a period with traffic."""
    namespaces: tuple[str, ...] = ()
    """Only objects in these namespaces (--namespace); empty: all."""
    exclude_namespaces: tuple[str, ...] = ()
    """Never objects in these namespaces (--exclude-namespace)."""
    label_from: tuple[LabelFrom, ...] = ()
    """Labels and annotations of the owner copied into Prometheus labels (--label-from)."""
    events: bool = True
    """Record Warning Events on owners whose load balancer or annotations are wrong."""
    cloudwatch: CloudWatchLimits = CloudWatchLimits()
    """Concurrency and rates of GetMetricData."""
    shard: Shard | None = None
    """Only the load balancers of this shard (--shard, --shards); None: all."""
    self_metrics: bool = True
    """Write lbscrape's own series (lbscrape_run_*, lag, build info) after each run."""


def parse_duration(text: str, option: str) -> int:
    """'120', '120s', '2m', '1h30m' -> seconds. Raises ConfigError naming `option`."""
    raw = text.strip().lower()
    pos, total = 0, 0
    for m in _DURATION_RE.finditer(raw):
        if m.start() != pos or m.group(2) not in _UNITS:
            break
        total += int(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not raw or pos != len(raw):
        raise ConfigError(
            f"{option}: cannot read duration {text!r}; use seconds or a unit s, m, h, d "
            "(e.g. 120, 120s, 2m, 1h30m)"
        )
    return total


def validate_window(w: WindowSettings) -> WindowSettings:
    if w.period <= 0 or w.period % 60:
        raise ConfigError(
            f"--period: {w.period}s is not a positive multiple of 60s; ELB metrics have "
            "1-minute resolution (use 60, 120, 300, ...)"
        )
    if w.settle_delay <= 0:
        raise ConfigError(
            "--settle-delay: must be positive; CloudWatch revises ELB datapoints for about "
            "two minutes (default 2m)"
        )
    if w.max_catchup < w.period:
        raise ConfigError(f"--max-catchup: {w.max_catchup}s is shorter than --period {w.period}s")
    if w.initial_lookback <= 0 or w.initial_lookback > w.max_catchup:
        raise ConfigError(
            f"--initial-lookback: {w.initial_lookback}s must be positive and no longer than "
            f"--max-catchup ({w.max_catchup}s)"
        )
    return w


def parse_label(text: str, option: str = "--label") -> tuple[str, str]:
    """'KEY=VALUE' -> (key, value), with a valid, non-reserved Prometheus label name."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key or not value:
        raise ConfigError(f"{option}: {text!r} is not KEY=VALUE with a non-empty key and value")
    if not LABEL_NAME_RE.match(key) or key.startswith("__"):
        raise ConfigError(
            f"{option}: {key!r} is not a valid Prometheus label name "
            "(letters, digits and _, not starting with a digit or __)"
        )
    if key in RESERVED_LABELS:
        raise ConfigError(
            f"{option}: {key!r} is set by lbscrape itself and cannot be overridden; "
            "choose another name"
        )
    if key.startswith(RESERVED_PREFIX):
        raise ConfigError(f"{option}: {key!r}: names starting with {RESERVED_PREFIX} are "
                          "reserved for lbscrape's own; choose another name")
    if len(value.encode()) > MAX_LABEL_VALUE_BYTES:
        raise ConfigError(f"{option}: the value of {key!r} is longer than "
                          f"{MAX_LABEL_VALUE_BYTES} bytes")
    return key, value


def parse_labels(texts: tuple[str, ...], option: str = "--label") -> tuple[tuple[str, str], ...]:
    labels = dict(parse_label(t, option) for t in texts)
    return tuple(sorted(labels.items()))


def parse_remote_write_url(text: str) -> str:
    netloc = ""
    try:
        parts = urlsplit(text.strip())
        netloc = parts.netloc
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 - raises ValueError for a port that is not 0-65535
    except ValueError:
        ok = False
    if "@" in text and "@" not in netloc:
        raise ConfigError(
            f"--remote-write-url: {redact_url(text)!r}: the user or password has a character "
            "that must be percent-encoded ('/' as %2F, '?' as %3F, '#' as %23, '@' as %40)"
        )
    if not ok:
        raise ConfigError(
            f"--remote-write-url: {redact_url(text)!r} is not an http(s) URL; give the full "
            "endpoint, e.g. http://prometheus:9090/api/v1/write"
        )
    return text.strip()


def validate_remote_write_auth(rw: RemoteWriteSettings) -> RemoteWriteSettings:
    """Check that the auth and TLS options go together. Reads no file (see
    read_secret_file); messages name options and paths, never a secret."""
    userinfo = bool(_USERINFO.match(rw.url))
    if rw.bearer_token_file and (rw.username or rw.password_file or userinfo):
        raise ConfigError(
            "--remote-write-bearer-token-file: cannot be combined with basic auth "
            "(--remote-write-username/--remote-write-password-file or user:password@ in "
            "--remote-write-url); choose one"
        )
    if rw.username is not None and not rw.username.strip():
        raise ConfigError("--remote-write-username: must not be empty")
    if rw.username and ":" in rw.username:
        raise ConfigError("--remote-write-username: must not contain ':' (basic auth)")
    if rw.username and not rw.password_file:
        raise ConfigError("--remote-write-username: needs --remote-write-password-file")
    if rw.password_file and not rw.username:
        raise ConfigError("--remote-write-password-file: needs --remote-write-username")
    if rw.username and userinfo:
        raise ConfigError(
            "--remote-write-username: cannot be combined with user:password@ in "
            "--remote-write-url; choose one"
        )
    if rw.cert_file and not rw.key_file:
        raise ConfigError("--remote-write-cert-file: needs --remote-write-key-file")
    if rw.key_file and not rw.cert_file:
        raise ConfigError("--remote-write-key-file: needs --remote-write-cert-file")
    _validate_sigv4(rw, userinfo)
    _validate_headers(rw, userinfo)
    return rw


_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
# Amazon Managed Prometheus: aps-workspaces.<region>.amazonaws.com (.cn in China).
_AMP_HOST = re.compile(r"^aps-workspaces\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$")


def _validate_sigv4(rw: RemoteWriteSettings, userinfo: bool) -> None:
    if rw.sigv4 and (rw.bearer_token_file or rw.username or rw.password_file or userinfo):
        raise ConfigError(
            "--remote-write-sigv4: cannot be combined with bearer or basic auth "
            "(--remote-write-bearer-token-file, --remote-write-username or user:password@ in "
            "--remote-write-url); SigV4 signs the Authorization header itself")
    for option, value in (("--remote-write-sigv4-region", rw.sigv4_region),
                          ("--remote-write-sigv4-role-arn", rw.sigv4_role_arn)):
        if value is not None and not rw.sigv4:
            raise ConfigError(f"{option}: needs --remote-write-sigv4")
    if rw.sigv4_region is not None and not _REGION.match(rw.sigv4_region):
        raise ConfigError(f"--remote-write-sigv4-region: {rw.sigv4_region!r} is not an AWS "
                          "region (e.g. us-east-1, eu-west-2)")
    if rw.sigv4_role_arn is not None and not _ROLE_ARN.match(rw.sigv4_role_arn):
        raise ConfigError(f"--remote-write-sigv4-role-arn: {rw.sigv4_role_arn!r} is not an "
                          "IAM role ARN (arn:aws:iam::123456789012:role/NAME)")


def sigv4_region(rw: RemoteWriteSettings, aws_region: str) -> str:
    """The region requests are signed for: --remote-write-sigv4-region, else the region
    of an aps-workspaces.<region>.amazonaws.com URL, else the AWS region."""
    if rw.sigv4_region:
        return rw.sigv4_region
    m = _AMP_HOST.match((urlsplit(rw.url).hostname or "").lower())
    return m.group(1) if m else aws_region


def _validate_headers(rw: RemoteWriteSettings, userinfo: bool) -> None:
    """No header lbscrape sets itself, none twice (names are case-insensitive)."""
    reserved = {h.lower(): "lbscrape itself (remote write 1.0 and HTTP)"
                for h in headers.ALWAYS_RESERVED}
    auth = ("--remote-write-sigv4" if rw.sigv4 else "--remote-write-bearer-token-file"
            if rw.bearer_token_file else "--remote-write-username" if rw.username
            else "the user:password@ of --remote-write-url" if userinfo else None)
    if auth:
        reserved["authorization"] = auth
    given = [("--remote-write-header", name) for name, _ in rw.headers]
    given += [("--remote-write-header-file", name) for name, _ in rw.header_files]
    if rw.tenant:
        given.append(("--remote-write-tenant", headers.TENANT_HEADER))
    headers.check_names(given, reserved, sigv4=rw.sigv4)


def read_secret_file(path: str, option: str) -> str:
    """The text of a credential file, stripped of surrounding whitespace (a Secret often
    ends in a newline). Errors name the option and the path, never the content."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read().strip()
    except UnicodeDecodeError:
        raise ConfigError(f"{option}: {path!r} is not UTF-8 text") from None
    except OSError as e:
        raise ConfigError(f"{option}: cannot read {path!r}: {e.strerror or e}") from None
    if not text:
        raise ConfigError(f"{option}: {path!r} is empty")
    return text


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def parse_configmap_ref(text: str) -> CheckpointLocation:
    ns, sep, name = text.partition("/")
    if not sep or not _DNS_LABEL.match(ns) or not _DNS_SUBDOMAIN.match(name):
        raise ConfigError(
            f"--checkpoint-configmap: {text!r} is not NAMESPACE/NAME (a namespace of lowercase "
            "letters, digits and '-'; a name that may also have '.'), "
            "e.g. monitoring/lbscrape-checkpoint"
        )
    return CheckpointLocation(ns, name)


def redact_url(url: str) -> str:
    """Hide userinfo (user:password@) so a URL can be logged.

    Works on the raw text up to the last '@': a password with an unescaped '/', '?' or
    '#' fools URL parsers, and hiding too much is harmless where hiding too little is not.
    """
    m = _USERINFO.match(url)
    return f"{m.group(1)}***@{url[m.end():]}" if m else url


# A Kubernetes label or annotation key: an optional DNS-subdomain prefix and '/', then a
# name of up to 63 characters.
_QUALIFIED_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
ANNOTATION_PREFIX = "annotation:"


@dataclass(frozen=True)
class LabelFrom:
    """--label-from: copy the owner's Kubernetes label (or annotation) `key` into the
    Prometheus label `label`."""

    key: str
    label: str
    annotation: bool = False

    @property
    def source(self) -> str:
        """How the key is named in messages: 'label KEY' or 'annotation KEY'."""
        return f"{'annotation' if self.annotation else 'label'} {self.key}"

    def __str__(self) -> str:
        return f"{ANNOTATION_PREFIX if self.annotation else ''}{self.key}={self.label}"


def parse_label_from(text: str, option: str = "--label-from") -> LabelFrom:
    """'KEY=LABEL' (a Kubernetes label of the owner) or 'annotation:KEY=LABEL'."""
    source, sep, label = text.strip().rpartition("=")
    annotation = source.startswith(ANNOTATION_PREFIX)
    key = source.removeprefix(ANNOTATION_PREFIX) if annotation else source
    if not sep or not key or not label:
        raise ConfigError(f"{option}: {text!r} is not SOURCE=LABEL, e.g. "
                          "app.kubernetes.io/name=job or annotation:example.com/team=team")
    if not valid_k8s_key(key):
        raise ConfigError(f"{option}: {key!r} is not a Kubernetes label or annotation key "
                          "([prefix/]name, e.g. app.kubernetes.io/name)")
    parse_label(f"{label}=x", option)  # the same name rules as --label
    return LabelFrom(key, label, annotation)


def parse_labels_from(texts: tuple[str, ...]) -> tuple[LabelFrom, ...]:
    """In the order given: for one LABEL, the first source the owner has is used."""
    return tuple(dict.fromkeys(parse_label_from(t) for t in texts))


def valid_k8s_key(key: str) -> bool:
    prefix, sep, name = key.rpartition("/")
    if sep and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return False
    return bool(_QUALIFIED_NAME.match(name))


def parse_namespaces(namespaces: tuple[str, ...], exclude: tuple[str, ...]
                     ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """--namespace and --exclude-namespace: namespace names, none in both."""
    for option, names in (("--namespace", namespaces), ("--exclude-namespace", exclude)):
        for ns in names:
            if not _DNS_LABEL.match(ns):
                raise ConfigError(f"{option}: {ns!r} is not a namespace name (lowercase "
                                  "letters, digits and '-')")
    both = sorted(set(namespaces) & set(exclude))
    if both:
        raise ConfigError(f"--exclude-namespace: {', '.join(both)} also given to --namespace")
    return tuple(sorted(set(namespaces))), tuple(sorted(set(exclude)))
