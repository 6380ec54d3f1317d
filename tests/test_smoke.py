"""`lbscrape smoke` against the test world: the fake API server answering reviews per
cronjob/rbac.yaml, moto, and a real Prometheus (behind a fault proxy where it must refuse)."""

from __future__ import annotations

import json
import re
import time

import pytest
from click.testing import CliRunner
from kubernetes import client as k8s

from lbscrape.cli import cli
from lbscrape.core.config import CheckpointLocation
from lbscrape.core.options import DEFAULT_CHECKPOINT_NAME
from lbscrape.flows import smoke
from lbscrape.kube.client import make_api_client
from tests.fakekube import Grant
from tests.faultproxy import FaultProxy, Rule
from tests.test_least_privilege import REMOTE_WRITE_IAM, granted_iam
from tests.test_manifests import _grants, _one
from tests.world import free_port

TOKEN = "smoke-s3cret-token-4711"
K8S = [f"k8s: {p}" for p in (
    "list ingressclasses.networking.k8s.io",
    "list ingresses.networking.k8s.io (all namespaces)",
    "list services (all namespaces)",
    "list targetgroupbindings.elbv2.k8s.aws (all namespaces)",
    "create events (all namespaces)",
    "get configmaps/lbscrape-checkpoint in monitoring",
    "update configmaps/lbscrape-checkpoint in monitoring",
    "create configmaps in monitoring",
)]
AWS = ["aws: elasticloadbalancing:DescribeLoadBalancers",
       "aws: elasticloadbalancing:DescribeLoadBalancers (classic)",
       "aws: elasticloadbalancing:DescribeTags",
       "aws: elasticloadbalancing:DescribeTargetGroups", "aws: cloudwatch:GetMetricData"]
ALL = [*K8S, *AWS, "remote write"]
EXPIRED = (b'<ErrorResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/">'
           b"<Error><Type>Sender</Type><Code>ExpiredToken</Code><Message>The security token "
           b"included in the request is expired</Message></Error><RequestId>1</RequestId>"
           b"</ErrorResponse>")


def rbac_yaml_grants():
    """cronjob/rbac.yaml as the fake API server's policy: the Role in its namespace."""
    role = _one("Role")
    return [Grant(tuple(r["verbs"]), tuple(r["apiGroups"]), tuple(r["resources"]),
                  tuple(r.get("resourceNames", ())), namespace)
            for rules, namespace in ((_one("ClusterRole")["rules"], None),
                                     (role["rules"], role["metadata"]["namespace"]))
            for r in rules]


def run_smoke(kube, *args, expect):
    result = CliRunner().invoke(cli, ["smoke", "--region", "us-east-1",
                                      "--kubeconfig", kube.kubeconfig_path, "-o", "json", *args])
    assert result.exit_code == expect, result.output + result.stderr
    assert "Traceback" not in result.output + result.stderr
    doc = json.loads(result.stdout)
    return doc, {c["check"]: (c["result"], c["detail"]) for c in doc["checks"]}


def write_args(url, *extra):
    return ["--cluster", "ci", "--label", "env=ci", "--remote-write-url", url,
            "--remote-write-retries", "0", *extra]


def results(rows):
    return {name: result for name, (result, _) in rows.items()}


@pytest.fixture
def rbac(kube, aws):
    kube.grant_only(rbac_yaml_grants())
    aws.create_lb("k8s-shop-web-0123456789")  # DescribeTags needs one to ask about
    return kube


@pytest.fixture
def prom_proxy(prometheus):
    proxy = FaultProxy(prometheus.url)
    proxy.start()
    yield proxy
    proxy.stop()


def smoke_samples(prometheus):
    return prometheus.raw("lbscrape_smoke")


def test_permissions_are_the_ones_rbac_yaml_grants():
    cluster, namespaced = _grants(_one("ClusterRole")["rules"]), _grants(_one("Role")["rules"])
    assert {(p.group, p.resource, p.verb) for p in smoke.PERMISSIONS
            if p.scope != "checkpoint"} == cluster
    assert {(p.group, p.resource, p.verb) for p in smoke.PERMISSIONS
            if p.scope == "checkpoint"} == namespaced
    named = {(g, res, v) for r in _one("Role")["rules"] if r.get("resourceNames")
             for g, res, v in _grants([r])}
    assert {(p.group, p.resource, p.verb) for p in smoke.PERMISSIONS if p.named} == named
    assert {p.resource for p in smoke.PERMISSIONS if p.scope == "cluster"} == {"ingressclasses"}
    assert set(smoke.AWS_ACTIONS) == granted_iam() - REMOTE_WRITE_IAM


def test_all_pass_and_the_sample_lands_in_prometheus(rbac, prometheus):
    before = time.time()
    doc, rows = run_smoke(rbac, *write_args(prometheus.write_url), expect=0)
    assert list(rows) == ALL
    assert results(rows) == dict.fromkeys(ALL, "pass")
    assert (doc["ok"], doc["passed"], doc["failed"], doc["skipped"]) == (True, 14, 0, 0)
    assert "1 metric requested, $0.00001" in rows["aws: cloudwatch:GetMetricData"][1]
    assert rows["remote write"][1].startswith(f"{prometheus.write_url} accepted lbscrape_smoke{{")
    # One review per permission, asked as the RBAC authorizer needs it...
    assert rbac.reviews == [
        {"verb": "list", "group": "networking.k8s.io", "resource": "ingressclasses",
         "namespace": ""},
        {"verb": "list", "group": "networking.k8s.io", "resource": "ingresses", "namespace": ""},
        {"verb": "list", "group": "", "resource": "services", "namespace": ""},
        {"verb": "list", "group": "elbv2.k8s.aws", "resource": "targetgroupbindings",
         "namespace": ""},
        {"verb": "create", "group": "", "resource": "events", "namespace": ""},
        {"verb": "get", "group": "", "resource": "configmaps", "namespace": "monitoring",
         "name": DEFAULT_CHECKPOINT_NAME},
        {"verb": "update", "group": "", "resource": "configmaps", "namespace": "monitoring",
         "name": DEFAULT_CHECKPOINT_NAME},
        {"verb": "create", "group": "", "resource": "configmaps", "namespace": "monitoring"},
    ]
    # ...and nothing else: the checkpoint is never read or written.
    assert {(s.verb, s.resource) for s in rbac.seen} == {("create", "selfsubjectaccessreviews")}
    assert rbac.get("v1", "configmaps", "monitoring", DEFAULT_CHECKPOINT_NAME) is None
    (labels, samples), = smoke_samples(prometheus).items()
    assert dict(labels) == {"__name__": "lbscrape_smoke", "cluster": "ci",
                            "region": "us-east-1", "env": "ci"}
    (ts_ms, value), = samples
    assert value == 1.0 and before * 1000 - 1000 <= ts_ms <= time.time() * 1000


def test_table_output(rbac):
    result = CliRunner().invoke(cli, ["smoke", "--no-write", "--region", "us-east-1",
                                      "--kubeconfig", rbac.kubeconfig_path])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["CHECK", "RESULT", "DETAIL"]
    rows = [re.split(r"  +", line, maxsplit=2) for line in lines[1:-1]]
    assert rows[0] == ["k8s: list ingressclasses.networking.k8s.io", "pass",
                       "RBAC: allowed by fakekube policy"]
    assert [r[0] for r in rows] == ALL
    assert rows[-1] == ["remote write", "skipped", "--no-write: nothing written"]
    assert lines[-1] == "13 passed, 0 failed, 1 skipped"
    # RESULT and DETAIL are aligned columns.
    assert len({line.index(" pass ") for line in lines[1:-2]}) == 1
    assert lines[-2].index("skipped") == lines[0].index("RESULT")


@pytest.mark.parametrize("permission", smoke.PERMISSIONS,
                         ids=lambda p: f"{p.verb}-{p.resource}")
def test_a_denied_permission_fails_its_row_and_the_rest_still_run(rbac, permission):
    ns = "monitoring" if permission.scope == "checkpoint" else None
    rbac.deny(permission.verb, permission.resource, namespace=ns)
    doc, rows = run_smoke(rbac, "--no-write", expect=1)
    name = f"k8s: {permission.describe(CheckpointLocation('monitoring', DEFAULT_CHECKPOINT_NAME))}"
    assert results(rows) == {**dict.fromkeys(ALL, "pass"), name: "fail",
                             "remote write": "skipped"}
    assert rows[name][1] == ("not allowed; grant it to the identity lbscrape runs as "
                             "(see cronjob/rbac.yaml)")
    assert doc["ok"] is False and len(rbac.reviews) == 8


def test_a_renamed_checkpoint_configmap_needs_the_role_changed_too(rbac):
    _, rows = run_smoke(rbac, "--no-write", "--checkpoint-configmap", "monitoring/other",
                        expect=1)
    assert {n: r for n, r in results(rows).items() if "configmaps" in n} == {
        "k8s: get configmaps/other in monitoring": "fail",
        "k8s: update configmaps/other in monitoring": "fail",
        "k8s: create configmaps in monitoring": "pass",  # create is not limited by name
    }
    _, rows = run_smoke(rbac, "--no-write", "--checkpoint-configmap",
                        "elsewhere/lbscrape-checkpoint", expect=1)
    assert [r for n, r in results(rows).items() if "configmaps" in n] == ["fail"] * 3


def test_denial_reason_from_the_api_server_is_shown(kube):
    kube.deny("list", "services", reason="webhook says no")
    _, rows = run_smoke(kube, "--no-write", expect=1)
    assert rows["k8s: list services (all namespaces)"] == (
        "fail", "not allowed (webhook says no); grant it to the identity lbscrape runs as "
                "(see cronjob/rbac.yaml)")


def test_checkpoint_file_skips_the_configmap_checks(rbac, tmp_path):
    path = tmp_path / "checkpoint.json"
    doc, rows = run_smoke(rbac, "--no-write", "--checkpoint-file", str(path), expect=0)
    skipped = [n for n, r in results(rows).items() if r == "skipped"]
    assert skipped == ["k8s: get configmaps (checkpoint)", "k8s: update configmaps (checkpoint)",
                       "k8s: create configmaps (checkpoint)", "remote write"]
    assert doc["skipped"] == 4 and doc["passed"] == 10
    assert all(r["resource"] != "configmaps" for r in rbac.reviews) and len(rbac.reviews) == 5
    assert not path.exists()


def test_no_events_skips_the_events_check(rbac):
    rbac.deny("create", "events")
    doc, rows = run_smoke(rbac, "--no-write", "--no-events", expect=0)
    assert rows["k8s: create events (all namespaces)"] == (
        "skipped", "--no-events: no Events are recorded")
    assert all(r["resource"] != "events" for r in rbac.reviews) and len(rbac.reviews) == 7
    _, rows = run_smoke(rbac, "--no-write", expect=1)  # without it, the denial shows
    assert rows["k8s: create events (all namespaces)"][0] == "fail"


def test_unreachable_api_server_fails_its_rows_and_aws_is_still_checked(tmp_path, aws):
    from tests.fakekube import FakeKube

    aws.create_lb("k8s-shop-web-0123456789")
    fake = FakeKube()
    fake.start()
    fake.kubeconfig_path = fake.write_kubeconfig(str(tmp_path / "kubeconfig"))
    fake.stop()  # nothing listens there any more
    _, rows = run_smoke(fake, "--no-write", expect=1)
    assert results(rows) == {**dict.fromkeys(K8S, "fail"), **dict.fromkeys(AWS, "pass"),
                             "remote write": "skipped"}
    assert rows[K8S[0]][1].startswith("Kubernetes API unreachable: create "
                                      "selfsubjectaccessreviews.authorization.k8s.io:")
    assert all(rows[n][1].startswith("not checked: Kubernetes API unreachable") for n in K8S[1:])


@pytest.mark.parametrize(("status", "body", "reason"), [
    (400, b"out of bounds\n", "HTTP 400: out of bounds"),
    (503, b"overloaded\n", "failed after 1 attempts: HTTP 503: overloaded"),
    (404, b"<!DOCTYPE html><html><body>Not Found</body></html>", "an HTML page"),
])
def test_a_refused_remote_write_fails_its_row_with_the_reason(rbac, prometheus, prom_proxy,
                                                                status, body, reason):
    prom_proxy.add(Rule(lambda r: r.method == "POST", status=status, body=body))
    doc, rows = run_smoke(rbac, *write_args(f"{prom_proxy.url}/api/v1/write"), expect=1)
    assert results(rows) == {**dict.fromkeys(ALL, "pass"), "remote write": "fail"}
    assert reason in rows["remote write"][1]
    assert prom_proxy.url in rows["remote write"][1]
    assert [r.method for r in prom_proxy.seen] == ["POST"]
    assert smoke_samples(prometheus) == {}


def test_a_closed_remote_write_port_fails_its_row(rbac):
    url = f"http://127.0.0.1:{free_port()}/api/v1/write"
    _, rows = run_smoke(rbac, *write_args(url), expect=1)
    assert results(rows) == {**dict.fromkeys(ALL, "pass"), "remote write": "fail"}
    assert rows["remote write"][1].startswith(f"remote write to {url} failed after 1 attempts: "
                                              "connection error:")
    assert "Connection refused" in rows["remote write"][1]


def test_no_write_sends_nothing_even_with_a_remote_write_url(rbac, prometheus, prom_proxy):
    # As in CI, where LBSCRAPE_REMOTE_WRITE_URL and LBSCRAPE_CLUSTER are set anyway.
    _, rows = run_smoke(rbac, *write_args(f"{prom_proxy.url}/api/v1/write", "--no-write"),
                        expect=0)
    assert rows["remote write"] == ("skipped", "--no-write: nothing written")
    assert prom_proxy.seen == []
    assert smoke_samples(prometheus) == {}


def test_no_load_balancer_skips_the_tags_check(kube):
    _, rows = run_smoke(kube, "--no-write", expect=0)
    assert rows["aws: elasticloadbalancing:DescribeTags"] == (
        "skipped", "no ELBv2 load balancer in us-east-1 to ask about")


def test_missing_aws_credentials_fail_the_aws_rows_clearly(rbac, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    _, rows = run_smoke(rbac, "--no-write", expect=1)
    assert results(rows) == {**dict.fromkeys(ALL, "pass"), **dict.fromkeys(AWS, "fail"),
                             "remote write": "skipped"}
    for name in AWS:
        assert rows[name][1].startswith("AWS credentials not found: configure a role (IRSA)")


def test_expired_aws_credentials_are_named(rbac, moto_server, monkeypatch):
    proxy = FaultProxy(moto_server)
    proxy.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    proxy.add(Rule(lambda r: r.mentions("DescribeLoadBalancers"), status=400, body=EXPIRED,
                   headers={"Content-Type": "text/xml"}))
    try:
        _, rows = run_smoke(rbac, "--no-write", expect=1)
    finally:
        proxy.stop()
    assert rows[AWS[3]][0] == "pass"
    expired = ("fail", "ExpiredToken: The security token included in the request is expired; "
                       "the AWS credentials have expired: refresh them (a new session, "
                       "`aws sso login`) or check the role's token (IRSA)")
    assert [rows[name] for name in AWS[:3]] == [expired] * 3
    # One call per check, none retried.
    assert sum(r.mentions("DescribeLoadBalancers") for r in proxy.seen) == 3


def test_the_bearer_token_is_sent_but_never_printed(rbac, prometheus, prom_proxy, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    url = f"{prom_proxy.url}/api/v1/write"
    args = write_args(url, "--remote-write-bearer-token-file", str(token_file))
    for table in (False, True):
        result = CliRunner().invoke(cli, ["smoke", "--region", "us-east-1", "--kubeconfig",
                                          rbac.kubeconfig_path, *args,
                                          *([] if table else ["-o", "json"])])
        assert result.exit_code == 0 and TOKEN not in result.output + result.stderr
    # An endpoint that echoes the token in its refusal: scrubbed.
    prom_proxy.add(Rule(lambda r: r.method == "POST", status=401,
                        body=f"invalid token {TOKEN}".encode()))
    result = CliRunner().invoke(cli, ["smoke", "--region", "us-east-1", "--kubeconfig",
                                      rbac.kubeconfig_path, *args])
    assert result.exit_code == 1
    assert TOKEN not in result.output + result.stderr
    assert "HTTP 401: invalid token ***" in result.stdout
    assert {r.headers.get("Authorization") for r in prom_proxy.seen} == {f"Bearer {TOKEN}"}
    assert len(prom_proxy.seen) == 3 and len(smoke_samples(prometheus)) == 1


def test_url_userinfo_is_redacted(rbac, prometheus):
    url = prometheus.write_url.replace("http://", "http://ci:pa55word@")
    _, rows = run_smoke(rbac, *write_args(url), expect=0)
    assert "pa55word" not in rows["remote write"][1]
    assert rows["remote write"][1].startswith("http://***@127.0.0.1:")


@pytest.mark.parametrize(("args", "names"), [
    (["--remote-write-url", "http://127.0.0.1:9/api/v1/write"], "--cluster"),
    (["--cluster", "c"], "--remote-write-url"),
    (["--cluster", " ", "--remote-write-url", "http://127.0.0.1:9/api/v1/write"], "--cluster"),
    (write_args("http://127.0.0.1:9/api/v1/write", "--remote-write-bearer-token-file",
                "/nonexistent/token"), "--remote-write-bearer-token-file"),
    (write_args("ftp://prom/write"), "--remote-write-url"),
    (["--no-write", "--label", "cluster=x"], "--label"),
    (["--no-write", "--checkpoint-file", "/tmp/x", "--checkpoint-configmap", "a/b"],
     "--checkpoint-file"),
    (["--no-write", "--checkpoint-configmap", "nope"], "--checkpoint-configmap"),
])
def test_bad_input_is_one_line_exit_2_and_checks_nothing(kube, args, names):
    result = CliRunner().invoke(cli, ["smoke", "--kubeconfig", kube.kubeconfig_path, *args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"lbscrape: error: {names}")
    assert result.stdout == "" and kube.seen == []


def test_fake_review_answers_like_an_api_server(kube):
    """The real client against fakekube's SelfSubjectAccessReview, as smoke relies on it."""
    api, _ = make_api_client(kube.kubeconfig_path, None)
    authz = k8s.AuthorizationV1Api(api)
    kube.grant_only(rbac_yaml_grants())

    def review(**attrs):
        body = k8s.V1SelfSubjectAccessReview(spec=k8s.V1SelfSubjectAccessReviewSpec(
            resource_attributes=k8s.V1ResourceAttributes(**attrs)))
        return authz.create_self_subject_access_review(body)

    got = review(verb="get", resource="configmaps", namespace="monitoring",
                 name=DEFAULT_CHECKPOINT_NAME)
    assert got.spec.resource_attributes.name == DEFAULT_CHECKPOINT_NAME
    assert got.status.allowed is True
    assert review(verb="get", resource="configmaps", namespace="monitoring").status.allowed \
        is False  # resourceNames: a request without the name is not allowed
    assert review(verb="get", resource="secrets", namespace="monitoring").status.allowed is False
    assert review(verb="list", resource="services", namespace="shop").status.allowed is True
    with pytest.raises(k8s.ApiException) as e:
        authz.create_self_subject_access_review(
            k8s.V1SelfSubjectAccessReview(spec=k8s.V1SelfSubjectAccessReviewSpec()))
    assert e.value.status == 422
