from __future__ import annotations

import logging
import os
import shutil
import tempfile
import urllib.request

import pytest
from moto.server import ThreadedMotoServer

from tests.fakekube import FakeKube
from tests.world import Aws, Prometheus


def pytest_configure(config):
    """The suite's temp files go to a directory of its own (TMPDIR, so also those of the
    processes it starts: lbscrape runs, Prometheus, the demo), checked and removed at the
    end of the session: a run of the suite leaves nothing behind, also when it fails."""
    config.lbscrape_tmp = tempfile.mkdtemp(prefix="lbscrape-tests-")
    os.environ["TMPDIR"] = tempfile.tempdir = config.lbscrape_tmp


def pytest_unconfigure(config):
    shutil.rmtree(config.lbscrape_tmp, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def leaves_no_temp_files(request):
    """Everything a test makes in the temp directory is gone when the session ends (apart
    from pytest's own tmp_path folders, removed with the directory afterwards)."""
    yield
    root = request.config.lbscrape_tmp
    left = sorted(p for p in os.listdir(root) if not p.startswith("pytest-of-"))
    assert left == [], f"tests left these in the temp directory: {left}"


@pytest.fixture(scope="session")
def moto_server():
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request lines
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(autouse=True)
def aws_env(monkeypatch, moto_server):
    """Every AWS call of a test goes to moto, never to AWS, with fake credentials."""
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE",
                "AWS_SHARED_CREDENTIALS_FILE", "KUBERNETES_SERVICE_HOST"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    # Never let botocore look for credentials on the instance metadata address.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_WEB_IDENTITY_TOKEN_FILE", raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    req = urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")
    urllib.request.urlopen(req).close()
    for var in list(os.environ):
        if var.startswith("LBSCRAPE_"):
            monkeypatch.delenv(var)


@pytest.fixture
def aws():
    return Aws("us-east-1")


@pytest.fixture
def kube(tmp_path):
    fake = FakeKube()
    fake.start()
    fake.kubeconfig_path = fake.write_kubeconfig(str(tmp_path / "kubeconfig"))
    yield fake
    fake.stop()


@pytest.fixture
def prometheus():
    prom = Prometheus().start()  # removes its directory itself if it cannot start
    yield prom
    prom.cleanup()


def pytest_addoption(parser):
    parser.addoption("--fault-runs", type=int, default=50,
                     help="consecutive runs in the fault-injection test (default 50)")
    parser.addoption("--fault-seed", type=int, default=1234,
                     help="random seed of the fault-injection test; 0 picks one at random")
