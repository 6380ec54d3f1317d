"""SigV4 for Amazon Managed Prometheus, checked by a receiver that verifies every
request's signature (service aps, region, signed headers, payload hash) with known test
credentials, in front of the real Prometheus, and answers as AMP (Cortex) does.
Credentials come from boto3's chain (here: environment variables), or from a role
assumed through moto's STS."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from lbscrape.aws import session as aws_session
from lbscrape.aws import sigv4
from lbscrape.cli import cli
from lbscrape.core.config import RemoteWriteSettings, sigv4_region
from lbscrape.core.errors import RemoteWriteError
from lbscrape.core.model import Sample, Series
from lbscrape.prom import remote_write
from tests import world
from tests.faultproxy import FaultProxy, Rule
from tests.receivers import Keys, Receiver, SigV4Verifier, crash_then_repeat, exactly_once
from tests.test_backfill import World, assert_exact
from tests.test_least_privilege import granted_iam
from tests.test_run import Scene, summary
from tests.test_smoke import rbac_yaml_grants, run_smoke, write_args

KEY_ID = "AKIALBSCRAPETEST0001"
SECRET = "lbscrape/sigv4/test+secret/0001"
REGION = "us-west-2"  # the workspace's, not the load balancers' (us-east-1)
ROLE = "arn:aws:iam::123456789012:role/amp-writer"
SIGV4 = ("--remote-write-sigv4", "--remote-write-sigv4-region", REGION)
EXPIRED = (b'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>'
           b"<Type>Sender</Type><Code>ExpiredToken</Code><Message>The security token "
           b"included in the request is expired</Message></Error><RequestId>1</RequestId>"
           b"</ErrorResponse>")


@pytest.fixture(autouse=True)
def credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)


@pytest.fixture
def keys():
    return Keys({KEY_ID: (SECRET, None)})


@pytest.fixture
def amp(prometheus, keys):
    """AMP: SigV4 verified, then Cortex semantics (partial ingest, 400); no tenant header."""
    receiver = Receiver(prometheus, "mimir", tenant_header=None,
                        verifier=SigV4Verifier(REGION, keys))
    receiver.start()
    yield receiver
    receiver.stop()


def amp_url(receiver):
    return f"{receiver.url}/workspaces/ws-0123abcd-4567-89ef-0123-456789abcdef/api/v1/remote_write"


def signed_headers(seen):
    return re.search(r"SignedHeaders=([^,]+)", seen.headers["authorization"]).group(1).split(";")


@pytest.fixture
def cortex(prometheus, keys):
    """A Cortex behind a SigV4 check that wants a tenant too (AMP itself takes none)."""
    receiver = Receiver(prometheus, "mimir", verifier=SigV4Verifier(REGION, keys))
    receiver.start()
    yield receiver
    receiver.stop()


def test_run_crash_repeat_through_a_verifying_receiver_lands_once(aws, kube, prometheus,
                                                                  cortex, tmp_path):
    amp = cortex
    scene = Scene(aws, kube, prometheus)
    r = crash_then_repeat(scene, amp_url(amp), tmp_path, *SIGV4, "--remote-write-tenant",
                          "team-a", "--remote-write-header", "X-Team=shop")
    exactly_once(scene, r)
    assert amp.tenants() == {"team-a"}
    # Every request was signed, and verified: nothing was refused for its signature.
    # As Mimir's (AMP is Cortex): the repeat is one partially ingested request.
    assert len(amp.verifier.verified) == len(amp.seen) == r.requests("first") + r.requests(
        "second") == 2
    assert [s.status for s in amp.seen] == [200, 400]
    assert all({"x-team", "x-scope-orgid"} <= set(signed_headers(s)) for s in amp.seen)
    # Signed for aps in the workspace's region: cronjob/iam-policy.json grants that.
    scopes = {re.search(r"/(\d{8})/([^/]+)/([^/]+)/aws4_request", s.headers["authorization"])
              .group(2, 3) for s in amp.seen}
    assert scopes == {(REGION, "aps")} and "aps:RemoteWrite" in granted_iam()


def test_backfill_through_a_verifying_receiver_lands_once(aws, kube, keys, tmp_path):
    prom = world.Prometheus(ooo_window="1d").start()
    receiver = Receiver(prom, "mimir", verifier=SigV4Verifier(REGION, keys))
    receiver.start()
    try:
        w = World(aws, kube)
        w.backfill("--remote-write-url", amp_url(receiver), *SIGV4, "--state-file",
                   str(tmp_path / "state.json"), "--remote-write-max-samples", "1000",
                   "--remote-write-tenant", "team-a")
        assert_exact(prom, w)
        assert len(receiver.verifier.verified) == len(receiver.seen) > 1
        assert receiver.tenants() == {"team-a"}
    finally:
        receiver.stop()
        prom.cleanup()


def test_the_start_up_line_names_the_signing_region_and_no_secret(aws, kube, prometheus, amp):
    scene = Scene(aws, kube, prometheus)
    result = scene.run(scene.clock, "--remote-write-sigv4", remote_write_url=amp_url(amp),
                       expect=1)
    first = result.stderr.splitlines()[0]
    assert "remote_write_auth=sigv4(region=us-east-1)" in first  # the AWS region
    assert SECRET not in result.stderr and KEY_ID not in result.stderr
    # Signed for us-east-1, the workspace is in us-west-2: AMP's 403, with what to check.
    s = summary(result)
    assert "HTTP 403" in s and "Credential should be scoped to a valid region" in s
    assert "--remote-write-sigv4-region" in s and "aps:RemoteWrite" in s
    # The data's request, then the run's own series (refused alike).
    assert len(amp.seen) == 2 and scene.checkpoint() is None
    assert scene.stored("alb_request_count_sum") == {}


@pytest.mark.parametrize(("url", "given", "want"), [
    ("https://aps-workspaces.eu-central-1.amazonaws.com/workspaces/ws-1/api/v1/remote_write",
     None, "eu-central-1"),
    ("https://APS-WORKSPACES.ap-southeast-2.amazonaws.com/workspaces/ws-1/api/v1/remote_write",
     None, "ap-southeast-2"),
    ("https://aps-workspaces.cn-north-1.amazonaws.com.cn/workspaces/ws-1/api/v1/remote_write",
     None, "cn-north-1"),
    ("https://aps-workspaces.eu-central-1.amazonaws.com/workspaces/ws-1/api/v1/remote_write",
     "eu-west-1", "eu-west-1"),
    ("https://amp-proxy.example.com/api/v1/remote_write", None, "us-east-1"),
])
def test_the_signing_region(url, given, want):
    rw = RemoteWriteSettings(url, sigv4=True, sigv4_region=given)
    assert sigv4_region(rw, "us-east-1") == want


def test_a_payload_changed_after_signing_is_refused(amp, keys):
    """The verifier is no rubber stamp: the signature covers the body's hash."""
    body = remote_write.encode([Series((("__name__", "x"),), (Sample(1_000, 1.0),))])
    sign = sigv4.signer(aws_session.session("us-east-1"), REGION)
    url = amp_url(amp)
    headers = dict(sign("POST", url, {"Host": amp.url.split("//")[1],
                                      "Content-Encoding": "snappy",
                                      "Content-Type": "application/x-protobuf",
                                      "X-Prometheus-Remote-Write-Version": "0.1.0"}, body))
    path = url.split(amp.url)[1]
    low = {k.lower(): v for k, v in headers.items()}
    assert amp.verifier.check("POST", path, low, body) is None
    assert "does not match" in amp.verifier.check("POST", path, low, body + b"\0")
    keys.known[KEY_ID] = ("another secret", None)
    assert "does not match" in amp.verifier.check("POST", path, low, body)


def _sts_proxy(moto_server, monkeypatch):
    proxy = FaultProxy(moto_server)
    proxy.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    return proxy


def test_an_assumed_role_signs_and_is_refreshed_before_it_expires(amp, keys, moto_server,
                                                                 monkeypatch):
    proxy = _sts_proxy(moto_server, monkeypatch)
    keys.sts = lambda: [r.answer for r in proxy.seen]
    clock = [datetime.now(UTC)]
    try:
        sign = sigv4.signer(aws_session.session("us-east-1"), REGION, ROLE,
                            clock=lambda: clock[0])
        client = remote_write.Client(RemoteWriteSettings(amp_url(amp), retries=0),
                                     signer=sign)

        def post():
            client.post(remote_write.encode([Series((("__name__", "x"),), (
                Sample(int(clock[0].timestamp()) // 60 * 60_000, 1.0),))]))

        def assumed():
            return sum(r.mentions("AssumeRole") for r in proxy.seen)

        assert assumed() == 1  # at once: a role that cannot be assumed stops a run early
        post()
        clock[0] += timedelta(minutes=30)
        post()
        assert assumed() == 1
        clock[0] += timedelta(minutes=16)  # 14 minutes before the hour's credentials end
        post()
        assert assumed() == 2
    finally:
        proxy.stop()
    first, _, third = amp.verifier.verified
    assert first.startswith("ASIA") and third.startswith("ASIA") and first != third
    assert KEY_ID not in amp.verifier.verified  # signed as the role, not as the caller
    assert all("x-amz-security-token" in signed_headers(s) for s in amp.seen)


def test_a_failed_refresh_keeps_signing_until_the_credentials_run_out(amp, keys, moto_server,
                                                                     monkeypatch, caplog):
    proxy = _sts_proxy(moto_server, monkeypatch)
    keys.sts = lambda: [r.answer for r in proxy.seen]
    clock = [datetime.now(UTC)]
    try:
        sign = sigv4.signer(aws_session.session("us-east-1"), REGION, ROLE,
                            clock=lambda: clock[0])
        client = remote_write.Client(RemoteWriteSettings(amp_url(amp), retries=0),
                                     signer=sign)
        body = remote_write.encode([Series((("__name__", "x"),), (
            Sample(int(clock[0].timestamp()) // 60 * 60_000, 1.0),))])
        proxy.add(Rule(lambda r: r.mentions("AssumeRole"), status=400, body=EXPIRED,
                       headers={"Content-Type": "text/xml"}))
        clock[0] += timedelta(minutes=46)  # advisory: 14 minutes left, the old ones work
        client.post(body)
        clock[0] += timedelta(minutes=6)  # mandatory: 8 minutes left
        with pytest.raises(RemoteWriteError) as e:
            client.post(body)
    finally:
        proxy.stop()
    assert len(amp.seen) == 1 and amp.verifier.verified[0].startswith("ASIA")
    assert str(e.value).endswith(f"--remote-write-sigv4-role-arn: cannot assume {ROLE}: "
                                 "ExpiredToken: The security token included in the request "
                                 "is expired; the AWS credentials have expired: refresh "
                                 "them (a new session, `aws sso login`) or check the "
                                 "role's token (IRSA)")
    warnings = [r for r in caplog.records if r.name == "botocore.credentials"]
    assert [r.exc_info for r in warnings] == [None, None]  # one line each, no traceback
    assert "advisory refresh period. --remote-write-sigv4-role-arn" in warnings[0].getMessage()


def test_missing_aws_credentials_one_line_exit_1_nothing_contacted(aws, kube, prometheus, amp,
                                                                   monkeypatch):
    scene = Scene(aws, kube, prometheus)
    kube.seen.clear()
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    result = scene.run(scene.clock, *SIGV4, remote_write_url=amp_url(amp), expect=1)
    errors = [line for line in result.stderr.splitlines() if '"level": "error"' in line]
    assert len(errors) == 1 and "--remote-write-sigv4: AWS credentials not found" in errors[0]
    assert "Traceback" not in result.output + result.stderr
    assert amp.seen == [] and kube.seen == []
    result = CliRunner().invoke(cli, [
        "backfill", "--cluster", "c", "--region", "us-east-1", "--kubeconfig",
        kube.kubeconfig_path, "--start", "-1h", "--yes", "--remote-write-url", amp_url(amp),
        *SIGV4])
    assert result.exit_code == 1 and result.stderr == (
        "lbscrape: error: --remote-write-sigv4: AWS credentials not found: configure a role "
        "(IRSA), a profile or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY\n")
    assert amp.seen == [] and kube.seen == []


def test_expired_credentials_one_line_exit_1(aws, kube, prometheus, amp, keys, moto_server,
                                             monkeypatch):
    scene = Scene(aws, kube, prometheus)
    # Expired keys of the pod's own: AMP answers 403, the run fails with that one line.
    keys.expired.add(KEY_ID)
    result = scene.run(scene.clock, *SIGV4, remote_write_url=amp_url(amp), expect=1)
    assert "The security token included in the request is expired" in summary(result)
    assert "Traceback" not in result.stderr and len(amp.seen) == 2  # data, own series
    # Expired source credentials of a role: STS refuses, before anything is fetched.
    proxy = _sts_proxy(moto_server, monkeypatch)
    proxy.add(Rule(lambda r: r.mentions("AssumeRole"), status=400, body=EXPIRED,
                   headers={"Content-Type": "text/xml"}))
    try:
        result = scene.run(scene.clock, *SIGV4, "--remote-write-sigv4-role-arn", ROLE,
                           remote_write_url=amp_url(amp), expect=1)
    finally:
        proxy.stop()
    errors = [line for line in result.stderr.splitlines() if '"level": "error"' in line]
    assert len(errors) == 1
    assert f"--remote-write-sigv4-role-arn: cannot assume {ROLE}: ExpiredToken" in errors[0]
    assert "the AWS credentials have expired" in errors[0]
    assert not any(r.mentions("GetMetricData") for r in proxy.seen)
    assert "Traceback" not in result.stderr and len(amp.seen) == 2  # data, own series


def test_smoke_checks_sigv4_and_headers(kube, aws, prometheus, amp, keys, monkeypatch):
    kube.grant_only(rbac_yaml_grants())
    aws.create_lb("k8s-shop-web-0123456789")
    args = write_args(amp_url(amp), *SIGV4, "--remote-write-header", "X-Team=shop")
    _, rows = run_smoke(kube, *args, expect=0)
    result, detail = rows["remote write"]
    assert result == "pass" and detail.endswith(
        "(auth sigv4(region=us-west-2); headers X-Team)")
    assert amp.verifier.verified == [KEY_ID] and len(prometheus.raw("lbscrape_smoke")) == 1
    # A wrong region fails the row with AMP's reason; the other rows still pass.
    _, rows = run_smoke(kube, *write_args(amp_url(amp), "--remote-write-sigv4"), expect=1)
    assert rows["remote write"][0] == "fail"
    assert "Credential should be scoped to a valid region" in rows["remote write"][1]
    assert {r for name, (r, _) in rows.items() if name != "remote write"} == {"pass"}
    # No credentials: the AWS rows and the remote-write row say so.
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    _, rows = run_smoke(kube, *args, expect=1)
    assert rows["remote write"] == ("fail", "--remote-write-sigv4: AWS credentials not found: "
                                            "configure a role (IRSA), a profile or "
                                            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
    assert len(amp.seen) == 2


BAD = [
    (["--remote-write-sigv4", "--remote-write-bearer-token-file", "/tmp/t"],
     "--remote-write-sigv4"),
    (["--remote-write-sigv4", "--remote-write-username", "u", "--remote-write-password-file",
      "/tmp/p"], "--remote-write-sigv4"),
    (["--remote-write-sigv4", "--remote-write-url", "https://u:p@127.0.0.1:9/api/v1/write"],
     "--remote-write-sigv4"),
    (["--remote-write-sigv4-region", "us-east-1"], "--remote-write-sigv4-region"),
    (["--remote-write-sigv4-role-arn", ROLE], "--remote-write-sigv4-role-arn"),
    (["--remote-write-sigv4", "--remote-write-sigv4-region", "useast1"],
     "--remote-write-sigv4-region"),
    (["--remote-write-sigv4", "--remote-write-sigv4-region", ""], "--remote-write-sigv4-region"),
    (["--remote-write-sigv4", "--remote-write-sigv4-role-arn", "arn:aws:iam::1234:user/x"],
     "--remote-write-sigv4-role-arn"),
    (["--remote-write-sigv4", "--remote-write-header", "Authorization=AWS4 x"],
     "--remote-write-header"),
    (["--remote-write-sigv4", "--remote-write-header", "X-Amz-Date=20260101T000000Z"],
     "--remote-write-header"),
    (["--remote-write-sigv4", "--remote-write-header-file", "x-amz-security-token=/tmp/t"],
     "--remote-write-header-file"),
]
URL = ["--remote-write-url", "https://127.0.0.1:9/api/v1/write"]


@pytest.mark.parametrize("command", ["run", "backfill", "smoke"])
def test_bad_sigv4_input_is_one_line_exit_2_nothing_contacted(kube, moto_server, monkeypatch,
                                                              command):
    proxy = _sts_proxy(moto_server, monkeypatch)
    base = {"run": ["run", "--cluster", "c", "--region", "us-east-1"],
            "backfill": ["backfill", "--cluster", "c", "--region", "us-east-1", "--start",
                         "-1h", "--yes"],
            "smoke": ["smoke", "--cluster", "c", "--region", "us-east-1"]}[command]
    try:
        for args, option in BAD:
            result = CliRunner().invoke(cli, [*base, "--kubeconfig", kube.kubeconfig_path,
                                              *URL, *args])
            lines = result.stderr.strip().splitlines()
            assert result.exit_code == 2, (args, result.output)
            assert len(lines) == 1 and lines[0].startswith(f"lbscrape: error: {option}:"), \
                (args, lines)
    finally:
        proxy.stop()
    assert kube.seen == [] and proxy.seen == []
