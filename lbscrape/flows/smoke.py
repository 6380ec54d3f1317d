"""`lbscrape smoke`: can this identity, account and endpoint do what `lbscrape run` does?

For CI against a real cluster and account. Each check asks the cheapest question that
proves one thing `run` needs, and writes no metric data:
- Kubernetes: one SelfSubjectAccessReview per verb and resource `run` uses (PERMISSIONS,
  the same list cronjob/rbac.yaml grants; a test keeps the two equal). A review only
  asks, so the checkpoint ConfigMap is never read, created or changed;
- AWS: one call per API, DescribeLoadBalancers and DescribeTargetGroups with a page of
  one, DescribeTags of one load balancer, and GetMetricData
  with one query over one period (one metric requested: $0.00001 at list price);
- remote write: one `lbscrape_smoke` sample, the only thing smoke writes.

Every check runs whatever the others answered, so one report shows everything to fix.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from kubernetes import client as k8s

from lbscrape.aws import session as aws
from lbscrape.core.config import CheckpointLocation, RemoteWriteSettings, redact_url
from lbscrape.core.console import Console, fail
from lbscrape.core.errors import (
    NO_CREDENTIALS,
    ExitStatus,
    KubeError,
    LbscrapeError,
    RemoteWriteError,
)
from lbscrape.core.model import Labels, Sample, Series, isotime
from lbscrape.core.options import SmokeOptions, smoke_settings
from lbscrape.flows import endpoint
from lbscrape.kube.client import call_api, make_api_client
from lbscrape.prom.remote_write import Client, Credentials, encode, load_credentials
from lbscrape.prom.series import selector

Result = Literal["pass", "fail", "skipped"]
Scope = Literal["cluster", "all-namespaces", "checkpoint"]

SMOKE_METRIC = "lbscrape_smoke"
RBAC_FILE = "cronjob/rbac.yaml"
IAM_FILE = "cronjob/iam-policy.json"
# The one metric GetMetricData is asked for; any ELB metric would do, the answer is unused.
PROBE_NAMESPACE, PROBE_METRIC = "AWS/ApplicationELB", "RequestCount"
PROBE_PERIOD = 60
PROBE_COST = "1 metric requested, $0.00001 at list price"
EXPIRED_CODES = frozenset({"ExpiredToken", "ExpiredTokenException", "RequestExpired"})
DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})


@dataclass(frozen=True)
class Check:
    name: str
    result: Result
    detail: str


@dataclass(frozen=True)
class Permission:
    """One verb on one resource that `lbscrape run` uses."""

    verb: str
    group: str  # "" is the core API group
    resource: str
    scope: Scope
    """cluster: a cluster-scoped resource; all-namespaces: listed across namespaces;
    checkpoint: in the checkpoint ConfigMap's namespace."""
    named: bool = False
    """Only the checkpoint ConfigMap itself (the Role names it in resourceNames)."""

    def describe(self, checkpoint: CheckpointLocation | None) -> str:
        what = f"{self.verb} {self.resource}{f'.{self.group}' if self.group else ''}"
        if self.scope == "all-namespaces":
            return f"{what} (all namespaces)"
        if self.scope == "cluster":
            return what
        if checkpoint is None:
            return f"{what} (checkpoint)"
        return (f"{what}/{checkpoint.name} in {checkpoint.namespace}" if self.named
                else f"{what} in {checkpoint.namespace}")

    def attributes(self, checkpoint: CheckpointLocation | None) -> k8s.V1ResourceAttributes:
        # An empty namespace asks for all namespaces (and is ignored for cluster-scoped
        # resources), which is how discovery lists.
        in_checkpoint = checkpoint is not None and self.scope == "checkpoint"
        return k8s.V1ResourceAttributes(
            verb=self.verb, group=self.group, resource=self.resource,
            namespace=checkpoint.namespace if checkpoint and in_checkpoint else "",
            name=checkpoint.name if checkpoint and self.named else None,
        )


# What discovery.py, events.py and checkpoint.py call, and what cronjob/rbac.yaml grants
# (a test keeps them equal). `create` cannot be limited to a name: the name is not known when
# the request is authorized.
PERMISSIONS: tuple[Permission, ...] = (
    Permission("list", "networking.k8s.io", "ingressclasses", "cluster"),
    Permission("list", "networking.k8s.io", "ingresses", "all-namespaces"),
    Permission("list", "", "services", "all-namespaces"),
    # Labels of target groups; a cluster without the CRD answers 404, which run takes as none.
    Permission("list", "elbv2.k8s.aws", "targetgroupbindings", "all-namespaces"),
    # Warning Events go into the namespace of the object they are about.
    Permission("create", "", "events", "all-namespaces"),
    Permission("get", "", "configmaps", "checkpoint", named=True),
    Permission("update", "", "configmaps", "checkpoint", named=True),
    Permission("create", "", "configmaps", "checkpoint"),
)

# The AWS actions `run` calls, as cronjob/iam-policy.json names them.
DESCRIBE_ACTION = "elasticloadbalancing:DescribeLoadBalancers"
TAGS_ACTION = "elasticloadbalancing:DescribeTags"
TARGET_GROUPS_ACTION = "elasticloadbalancing:DescribeTargetGroups"
METRICS_ACTION = "cloudwatch:GetMetricData"
AWS_ACTIONS = (DESCRIBE_ACTION, TAGS_ACTION, TARGET_GROUPS_ACTION, METRICS_ACTION)


def check_permissions(api: k8s.ApiClient, checkpoint: CheckpointLocation | None,
                      events: bool = True) -> list[Check]:
    """One review per permission. `checkpoint` None (a checkpoint file) skips the
    ConfigMap's; `events` False (--no-events) the Events'."""
    authz = k8s.AuthorizationV1Api(api)
    out: list[Check] = []
    unreachable: str | None = None
    for p in PERMISSIONS:
        name = f"k8s: {p.describe(checkpoint)}"
        if p.scope == "checkpoint" and checkpoint is None:
            out.append(Check(name, "skipped", "--checkpoint-file: checkpoints are in a local "
                                              "file, not a ConfigMap"))
            continue
        if p.resource == "events" and not events:
            out.append(Check(name, "skipped", "--no-events: no Events are recorded"))
            continue
        if unreachable:  # each further try would wait for the same timeout
            out.append(Check(name, "fail", unreachable))
            continue
        body = k8s.V1SelfSubjectAccessReview(spec=k8s.V1SelfSubjectAccessReviewSpec(
            resource_attributes=p.attributes(checkpoint)))
        try:
            review = call_api("create selfsubjectaccessreviews.authorization.k8s.io",
                              authz.create_self_subject_access_review, body)
        except KubeError as e:
            out.append(Check(name, "fail", str(e)))
            if e.status is None:
                unreachable = f"not checked: {e}"
            continue
        out.append(_verdict(name, review.status))
    return out


def _verdict(name: str, status: k8s.V1SubjectAccessReviewStatus | None) -> Check:
    reason = (status.reason or "") if status else ""
    if status and status.allowed:
        return Check(name, "pass", reason or "allowed")
    why = "denied" if status and status.denied else "not allowed"
    extra = "; ".join(x for x in (reason, status.evaluation_error if status else None) if x)
    return Check(name, "fail", f"{why}{f' ({extra})' if extra else ''}; grant it to the "
                               f"identity lbscrape runs as (see {RBAC_FILE})")


def check_aws(elbv2: Any, elb: Any, cloudwatch: Any, region: str, now: int) -> list[Check]:
    """One cheap call per AWS API `run` uses. (Both ELB APIs are authorised by the same
    IAM action, DescribeLoadBalancers, but they are separate endpoints.)"""

    def describe(client: Any) -> Callable[[], str]:
        def call() -> str:
            page = client.describe_load_balancers(PageSize=1)
            found = ("it has load balancers" if page.get("LoadBalancers")
                     or page.get("LoadBalancerDescriptions") else "no load balancers there")
            return f"answered in {region}; {found}"
        return call

    def tags() -> str:
        # Needs an existing ARN; asking about the first one listed costs one more listing.
        page = elbv2.describe_load_balancers(PageSize=1).get("LoadBalancers", [])
        if not page:
            raise _Skipped(f"no ELBv2 load balancer in {region} to ask about")
        elbv2.describe_tags(ResourceArns=[page[0]["LoadBalancerArn"]])
        return f"answered in {region} (asked about {page[0]['LoadBalancerName']})"

    def target_groups() -> str:
        page = elbv2.describe_target_groups(PageSize=1)
        found = "it has target groups" if page.get("TargetGroups") else "no target groups there"
        return f"answered in {region}; {found}"

    def metrics() -> str:
        end = now // PROBE_PERIOD * PROBE_PERIOD
        resp = cloudwatch.get_metric_data(
            MetricDataQueries=[{
                "Id": "smoke",
                "MetricStat": {"Metric": {"Namespace": PROBE_NAMESPACE,
                                          "MetricName": PROBE_METRIC},
                               "Period": PROBE_PERIOD, "Stat": "Sum"},
                "ReturnData": True,
            }],
            StartTime=datetime.fromtimestamp(end - PROBE_PERIOD, UTC),
            EndTime=datetime.fromtimestamp(end, UTC),
        )
        for r in resp.get("MetricDataResults", []):
            if r.get("StatusCode") in ("Forbidden", "InternalError"):
                msgs = "; ".join(m.get("Value", "") for m in r.get("Messages", []))
                raise _Refused(f"the query answered {r['StatusCode']}"
                               f"{f': {msgs}' if msgs else ''} ({PROBE_COST})")
        return f"answered in {region}; {PROBE_COST}"

    return [_aws_check(DESCRIBE_ACTION, describe(elbv2)),
            _aws_check(f"{DESCRIBE_ACTION} (classic)", describe(elb)),
            _aws_check(TAGS_ACTION, tags), _aws_check(TARGET_GROUPS_ACTION, target_groups),
            _aws_check(METRICS_ACTION, metrics)]


class _Refused(Exception):
    pass


class _Skipped(Exception):
    pass


def _aws_check(action: str, call: Callable[[], str]) -> Check:
    name = f"aws: {action}"
    try:
        return Check(name, "pass", call())
    except _Refused as e:
        return Check(name, "fail", str(e))
    except _Skipped as e:
        return Check(name, "skipped", str(e))
    except NoCredentialsError:
        return Check(name, "fail", NO_CREDENTIALS)
    except ClientError as e:
        err = e.response.get("Error", {})
        code = str(err.get("Code", "")) or "error"
        text = f"{code}: {str(err.get('Message', '')).strip() or 'no message'}"
        if code in EXPIRED_CODES:
            text += ("; the AWS credentials have expired: refresh them (a new session, "
                     "`aws sso login`) or check the role's token (IRSA)")
        elif code in DENIED_CODES:
            text += (f"; allow {action.split()[0]} to the role lbscrape runs as "
                     f"(see {IAM_FILE})")
        return Check(name, "fail", text)
    except BotoCoreError as e:  # no endpoint, credential provider failures, timeouts
        return Check(name, "fail", " ".join(str(e).split()))


def smoke_series(cluster: str, region: str, static_labels: Labels, now_ms: int) -> Series:
    """The one sample smoke writes: `lbscrape_smoke` = 1 at now, labelled like run's."""
    labels = dict(static_labels)
    labels.update(__name__=SMOKE_METRIC, cluster=cluster, region=region)
    return Series(tuple(sorted(labels.items())), (Sample(now_ms, 1.0),))


WRITE_SKIPPED = Check("remote write", "skipped", "--no-write: nothing written")


def check_remote_write(client: Client, series: Series, how: str = "") -> Check:
    """Write the one smoke sample. `how`: the auth and headers it was sent with."""
    name = "remote write"
    url = redact_url(client.settings.url)
    try:
        client.post(encode([series]))
    except RemoteWriteError as e:
        text = str(e)  # Client scrubs any credential the endpoint echoed
        return Check(name, "fail", text if url in text else f"{url}: {text}")
    at = isotime(series.samples[0].timestamp_ms // 1000)
    return Check(name, "pass", f"{url} accepted {selector(series.labels)} 1 at {at}"
                               f"{f' ({how})' if how else ''}")


def _write_check(rw: RemoteWriteSettings, credentials: Credentials, s: Any,
                 series: Series) -> Check:
    """The remote-write row: SigV4 without credentials, or a role that cannot be
    assumed, fails this row like a refused write does."""
    try:
        client = endpoint.client(rw, s, credentials)
    except (LbscrapeError, BotoCoreError) as e:
        return Check("remote write", "fail", " ".join(str(e).split()))
    how = [f"auth {endpoint.auth_kind(rw, s.region_name)}"] if rw.sigv4 else []
    if names := endpoint.header_names(rw):
        how.append(f"headers {names}")
    return check_remote_write(client, series, "; ".join(how))


def failed(checks: Sequence[Check]) -> bool:
    return any(c.result == "fail" for c in checks)


def counts(checks: Sequence[Check]) -> dict[str, int]:
    return {r: sum(c.result == r for c in checks) for r in ("pass", "fail", "skipped")}


def table(checks: Sequence[Check]) -> list[str]:
    rows = [("CHECK", "RESULT", "DETAIL")] + [(c.name, c.result, c.detail) for c in checks]
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    lines = [f"{r[0].ljust(widths[0])}  {r[1].ljust(widths[1])}  {r[2]}".rstrip() for r in rows]
    n = counts(checks)
    lines.append(f"{n['pass']} passed, {n['fail']} failed, {n['skipped']} skipped")
    return lines


def as_json(checks: Sequence[Check]) -> dict[str, Any]:
    n = counts(checks)
    return {"ok": not failed(checks), "passed": n["pass"], "failed": n["fail"],
            "skipped": n["skipped"],
            "checks": [{"check": c.name, "result": c.result, "detail": c.detail}
                       for c in checks]}


def execute(o: SmokeOptions, console: Console) -> int:
    """Every check, then the report; exit 1 when any failed."""
    try:
        settings = smoke_settings(o)
        rw = settings.remote_write
        write = (rw, load_credentials(rw)) if rw else None
        kube, own_namespace = make_api_client(o.kube.kubeconfig, o.kube.context)
        s = aws.session(o.region)
        elbv2, elb, cw = aws.client(s, "elbv2"), aws.client(s, "elb"), aws.client(s, "cloudwatch")
    except (LbscrapeError, BotoCoreError) as e:
        return fail(console, e)
    checkpoint = None if o.checkpoint.file else o.checkpoint.location(own_namespace)
    now = time.time()
    checks = [*check_permissions(kube, checkpoint, o.events),
              *check_aws(elbv2, elb, cw, s.region_name, int(now))]
    if write is not None:
        series = smoke_series(settings.cluster, s.region_name, settings.static_labels,
                              int(now * 1000))
        checks.append(_write_check(*write, s, series))
    else:
        checks.append(WRITE_SKIPPED)
    if o.output == "json":
        console.out(json.dumps(as_json(checks), indent=2))
    else:
        for line in table(checks):
            console.out(line)
    return ExitStatus.ERROR if failed(checks) else ExitStatus.OK
