"""Bad input: one line that names the option, exit 2, and nothing fetched or written."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from lbscrape import __version__
from lbscrape.cli import cli

BASE = ["run", "--cluster", "c", "--region", "us-east-1",
        "--remote-write-url", "http://127.0.0.1:9/api/v1/write"]


@pytest.mark.parametrize(("args", "names"), [
    (["--settle-delay", "2x"], "--settle-delay"),
    (["--settle-delay", "0"], "--settle-delay"),
    (["--period", "0"], "--period"),
    (["--period", "90s"], "--period"),
    (["--initial-lookback", "2h"], "--initial-lookback"),
    (["--max-catchup", "ten"], "--max-catchup"),
    (["--label", "novalue"], "--label"),
    (["--label", "bad-name=x"], "--label"),
    (["--label", "1x=y"], "--label"),
    (["--label", "namespace=x"], "--label"),
    (["--label", "__name__=x"], "--label"),
    (["--remote-write-url", "ftp://prom/api/v1/write"], "--remote-write-url"),
    (["--remote-write-url", "prometheus:9090"], "--remote-write-url"),
    (["--checkpoint-configmap", "just-a-name"], "--checkpoint-configmap"),
    (["--checkpoint-configmap", "Mon/Bad_Name"], "--checkpoint-configmap"),
    (["--remote-write-retries", "-1"], "--remote-write-retries"),
    (["--log-format", "xml"], "--log-format"),
])
def test_bad_option_is_one_line_exit_2_and_touches_nothing(kube, args, names):
    result = CliRunner().invoke(cli, [*BASE, "--kubeconfig", kube.kubeconfig_path, *args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lbscrape: error:") and names in lines[0]
    assert "Traceback" not in result.output
    assert kube.seen == []


def test_missing_required_options(kube):
    result = CliRunner().invoke(cli, ["run", "--kubeconfig", kube.kubeconfig_path])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "lbscrape: error: Missing option '--cluster' (env var: 'LBSCRAPE_CLUSTER'). "
        "(see 'lbscrape run --help')"]
    result = CliRunner().invoke(cli, ["run", "--cluster", "c", "--region", "us-east-1",
                                      "--kubeconfig", kube.kubeconfig_path])
    assert result.exit_code == 2 and "--remote-write-url" in result.stderr
    assert kube.seen == []


def test_unreadable_kubeconfig_is_a_usage_error(tmp_path):
    path = tmp_path / "missing"
    result = CliRunner().invoke(cli, [*BASE, "--kubeconfig", str(path)])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "--kubeconfig" in result.stderr


def test_no_region_is_a_usage_error(kube, monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION", raising=False)
    args = [a for a in BASE if a not in ("--region", "us-east-1")]
    result = CliRunner().invoke(cli, [*args, "--kubeconfig", kube.kubeconfig_path])
    assert result.exit_code == 2 and "--region" in result.stderr


def test_options_read_environment_variables(kube, monkeypatch):
    monkeypatch.setenv("LBSCRAPE_CLUSTER", "c")
    monkeypatch.setenv("LBSCRAPE_SETTLE_DELAY", "5 parsecs")
    result = CliRunner().invoke(cli, ["run", "--kubeconfig", kube.kubeconfig_path])
    assert result.exit_code == 2 and "--settle-delay" in result.stderr


def test_unreachable_api_server_is_one_clear_line(tmp_path):
    from tests.fakekube import FakeKube

    fake = FakeKube()
    fake.start()
    path = fake.write_kubeconfig(str(tmp_path / "kubeconfig"))
    fake.stop()  # nothing listens there any more
    result = CliRunner().invoke(cli, [*BASE, "--kubeconfig", path, "--log-format", "text"])
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "Kubernetes API unreachable" in errors[0]


def test_rbac_denial_names_verb_and_resource(kube):
    kube.inject("GET", "/ingresses", 403, message='ingresses is forbidden')
    result = CliRunner().invoke(cli, [*BASE, "--kubeconfig", kube.kubeconfig_path,
                                      "--log-format", "text"])
    assert result.exit_code == 1
    assert "list ingresses.networking.k8s.io: forbidden (403)" in result.stderr
    assert "cronjob/rbac.yaml" in result.stderr


def test_version_and_help():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output
    for name, command in cli.commands.items():
        assert command.help and "Example:" in command.help, f"{name} needs help with an example"


def test_console_entry_point_runs_as_a_module():
    proc = subprocess.run([sys.executable, "-m", "lbscrape", "run", "--period", "7s",
                           "--cluster", "c"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith("lbscrape: error: --period")


def test_missing_aws_credentials_is_one_clear_line(kube, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    result = CliRunner().invoke(cli, [*BASE, "--kubeconfig", kube.kubeconfig_path,
                                      "--log-format", "text"])
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "AWS credentials not found" in errors[0]
    assert "Traceback" not in result.stderr


def test_every_option_of_run_has_a_row_in_the_readme_option_table():
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| `--")]
    missing = [p.opts[0] for p in cli.commands["run"].params
               if not getattr(p, "hidden", False) and p.opts[0] != "--help"
               and not any(f"`{p.opts[0]}" in row and p.envvar in row for row in rows)]
    assert len(cli.commands["run"].params) > 30 and missing == []
