"""--remote-write-header, --remote-write-header-file and --remote-write-tenant: sent on
every request, given several at a time by env var one per line, values that are
credentials never shown, and every bad value one line, exit 2, nothing contacted."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from lbscrape.cli import cli
from tests.faultproxy import FaultProxy, Rule
from tests.test_run import Scene, logs, summary
from tests.test_smoke import rbac_yaml_grants, run_smoke, write_args

API_KEY = "k3y-0f-the-vendor-4711"


@pytest.fixture
def endpoint(prometheus):
    """Prometheus behind a proxy that records every request's headers."""
    proxy = FaultProxy(prometheus.url)
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "api-key"
    path.write_text(API_KEY + "\n")  # as a Secret often holds it
    return str(path)


def sent(proxy, name):
    """The value of header `name` (any case) in each POST the proxy saw."""
    return [{k.lower(): v for k, v in r.headers.items()}.get(name.lower())
            for r in proxy.seen if r.method == "POST"]


def test_headers_from_options_files_and_the_tenant_go_on_every_request(
        aws, kube, prometheus, endpoint, key_file, tmp_path):
    scene = Scene(aws, kube, prometheus)
    first = scene.clock - 300
    url = f"{endpoint.url}/api/v1/write"
    for now in (first, scene.clock):
        result = scene.run(now, "--remote-write-header", "THANOS-TENANT=team-a",
                           "--remote-write-header-file", f"X-Api-Key={key_file}",
                           "--remote-write-tenant", "team-a", remote_write_url=url)
    assert len(endpoint.seen) == 4  # per run: the data, then lbscrape's own series
    assert set(sent(endpoint, "Thanos-tenant")) == {"team-a"}
    assert set(sent(endpoint, "X-scope-orgid")) == {"team-a"}
    assert set(sent(endpoint, "X-api-key")) == {API_KEY}
    # The start-up line names the headers, never a value that may be a credential.
    start = logs(result)[0]["msg"]
    assert "remote_write_headers=THANOS-TENANT,X-Api-Key,X-Scope-OrgID " in start
    assert "remote_write_tenant=team-a " in start
    assert API_KEY not in result.stderr and API_KEY not in result.stdout
    assert scene.stored("alb_request_count_sum")


def test_the_env_var_takes_one_header_per_line(rbac, endpoint, monkeypatch):
    # A value may have spaces (Authorization=ApiKey ...), so lines separate, not spaces.
    monkeypatch.setenv("LBSCRAPE_REMOTE_WRITE_HEADER",
                       f"X-Scope-OrgID=team-a\nAuthorization=ApiKey {API_KEY}\n\n"
                       "X-Two=a b=c\n")
    run_smoke(rbac, *write_args(f"{endpoint.url}/api/v1/write"), expect=0)
    assert sent(endpoint, "X-Scope-OrgID") == ["team-a"]
    assert sent(endpoint, "Authorization") == [f"ApiKey {API_KEY}"]
    assert sent(endpoint, "X-Two") == ["a b=c"]  # one header: only a line break separates


@pytest.fixture
def rbac(kube, aws):
    kube.grant_only(rbac_yaml_grants())
    aws.create_lb("k8s-shop-web-0123456789")
    return kube


def test_smoke_sends_the_headers_and_names_them(rbac, endpoint, key_file):
    args = write_args(f"{endpoint.url}/api/v1/write", "--remote-write-tenant", "team-a",
                      "--remote-write-header-file", f"X-Api-Key={key_file}")
    _, rows = run_smoke(rbac, *args, expect=0)
    assert rows["remote write"][1].endswith("(headers X-Api-Key,X-Scope-OrgID)")
    assert sent(endpoint, "X-api-key") == [API_KEY]
    # An endpoint that refuses and echoes the key: scrubbed, in the table and in JSON.
    endpoint.add(Rule(lambda r: r.method == "POST", status=401,
                      body=f"unknown key {API_KEY}".encode()))
    doc, rows = run_smoke(rbac, *args, expect=1)
    assert rows["remote write"][0] == "fail" and "HTTP 401: unknown key ***" in rows[
        "remote write"][1]
    assert API_KEY not in json.dumps(doc)


def test_a_refusal_echoing_a_header_credential_never_shows_it(aws, kube, prometheus,
                                                             endpoint, key_file):
    scene = Scene(aws, kube, prometheus)
    endpoint.add(Rule(lambda r: r.method == "POST", status=403,
                      body=f"key {API_KEY} or ApiKey {API_KEY[::-1]} denied".encode()))
    result = scene.run(scene.clock, "--remote-write-header-file", f"X-Api-Key={key_file}",
                       "--remote-write-header", f"Authorization=ApiKey {API_KEY[::-1]}",
                       remote_write_url=f"{endpoint.url}/api/v1/write", expect=1)
    assert "HTTP 403: key *** or *** denied" in summary(result)
    assert API_KEY not in result.stderr and API_KEY[::-1] not in result.stderr


# --- bad input ---------------------------------------------------------------------


def _bad(tmp_path, key_file):
    missing = str(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    two_lines = tmp_path / "two-lines"
    two_lines.write_text(f"{API_KEY}\nsecond line\n")
    return [
        (["--remote-write-header", "X-Scope-OrgID"], "--remote-write-header"),
        (["--remote-write-header", f"X-Api-Key: {API_KEY}"], "--remote-write-header"),
        (["--remote-write-header", f"X Api Key={API_KEY}"], "--remote-write-header"),
        (["--remote-write-header", "X-Empty= "], "--remote-write-header"),
        (["--remote-write-header", f"X-Api-Key={API_KEY}\r\nX-Injected: 1"],
         "--remote-write-header"),
        (["--remote-write-header", f"X-Api-Key={API_KEY}\u00e9"], "--remote-write-header"),
        *[(["--remote-write-header", f"{name}=x"], "--remote-write-header") for name in (
            "Content-Encoding", "content-type", "X-Prometheus-Remote-Write-Version",
            "User-Agent", "Host", "Content-Length")],
        (["--remote-write-header", "Authorization=Bearer x", "--remote-write-bearer-token-file",
          key_file], "--remote-write-header"),
        (["--remote-write-header", "Authorization=Basic x", "--remote-write-username", "u",
          "--remote-write-password-file", key_file], "--remote-write-header"),
        (["--remote-write-header", "Authorization=x", "--remote-write-url",
          "https://u:p@127.0.0.1:9/api/v1/write"], "--remote-write-header"),
        (["--remote-write-header", "X-A=1", "--remote-write-header", "x-a=2"],
         "--remote-write-header"),
        (["--remote-write-header", "X-Scope-OrgID=a", "--remote-write-tenant", "b"],
         "--remote-write-tenant"),
        (["--remote-write-header", "X-A=1", "--remote-write-header-file", f"X-A={key_file}"],
         "--remote-write-header-file"),
        (["--remote-write-header-file", key_file], "--remote-write-header-file"),
        (["--remote-write-header-file", "X-Api-Key="], "--remote-write-header-file"),
        (["--remote-write-header-file", f"X-Api-Key={missing}"], "--remote-write-header-file"),
        (["--remote-write-header-file", f"X-Api-Key={empty}"], "--remote-write-header-file"),
        (["--remote-write-header-file", f"X-Api-Key={two_lines}"],
         "--remote-write-header-file"),
        (["--remote-write-header-file", f"User-Agent={key_file}"],
         "--remote-write-header-file"),
        (["--remote-write-tenant", "team a"], "--remote-write-tenant"),
        (["--remote-write-tenant", ".."], "--remote-write-tenant"),
        (["--remote-write-tenant", ""], "--remote-write-tenant"),
        (["--remote-write-tenant", "t" * 151], "--remote-write-tenant"),
    ]


@pytest.mark.parametrize("command", ["run", "backfill", "smoke"])
def test_bad_header_input_is_one_line_exit_2_nothing_contacted(kube, moto_server, monkeypatch,
                                                               tmp_path, key_file, command):
    aws_proxy = FaultProxy(moto_server)
    aws_proxy.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_proxy.url)
    writes = FaultProxy("http://127.0.0.1:9")
    writes.start()
    base = {"run": ["run", "--cluster", "c", "--region", "us-east-1"],
            "backfill": ["backfill", "--cluster", "c", "--region", "us-east-1", "--start",
                         "-1h", "--yes"],
            "smoke": ["smoke", "--cluster", "c", "--region", "us-east-1"]}[command]
    try:
        for args, option in _bad(tmp_path, key_file):
            result = CliRunner().invoke(cli, [
                *base, "--kubeconfig", kube.kubeconfig_path,
                "--remote-write-url", f"{writes.url}/api/v1/write", *args])
            lines = result.stderr.strip().splitlines()
            where = f"{command} {args}: {result.output}"
            assert result.exit_code == 2, where
            assert len(lines) == 1 and lines[0].startswith(f"lbscrape: error: {option}:"), where
            assert API_KEY not in result.output, where
            assert "Traceback" not in result.output, where
    finally:
        aws_proxy.stop()
        writes.stop()
    assert kube.seen == [] and aws_proxy.seen == [] and writes.seen == []


def test_bad_header_messages_say_what_to_do(kube, key_file):
    def error(*args):
        result = CliRunner().invoke(cli, [
            "run", "--cluster", "c", "--region", "us-east-1", "--kubeconfig",
            kube.kubeconfig_path, "--remote-write-url", "http://127.0.0.1:9/api/v1/write",
            *args])
        assert result.exit_code == 2
        return result.stderr.strip()

    assert error("--remote-write-header", f"X-Api-Key: {API_KEY}") == (
        "lbscrape: error: --remote-write-header: an entry is not NAME=VALUE (e.g. "
        "X-Scope-OrgID=team-a); write X-Api-Key=VALUE")
    assert error("--remote-write-header", "Content-Type=text/plain") == (
        "lbscrape: error: --remote-write-header: Content-Type is set by lbscrape itself "
        "(remote write 1.0 and HTTP) and cannot be overridden")
    assert error("--remote-write-header", "Authorization=Bearer x",
                 "--remote-write-bearer-token-file", key_file) == (
        "lbscrape: error: --remote-write-header: Authorization is set by "
        "--remote-write-bearer-token-file and cannot be overridden")
    assert error("--remote-write-tenant", "a", "--remote-write-header", "x-scope-orgid=b") == (
        "lbscrape: error: --remote-write-tenant: X-Scope-OrgID is also given by "
        "--remote-write-header; give it once")
    assert error("--remote-write-tenant", "team a").endswith(
        "a tenant ID is 1 to 150 letters, digits and !-_.*'() (not '.' or '..'), as Mimir "
        "and Cortex take it")
