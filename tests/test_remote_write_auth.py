"""Remote-write credentials and TLS: bearer token and basic auth from files, a private CA,
mTLS, option validation, and secrets that never reach logs, errors or --dry-run output.

Certificates are made here with `cryptography`: a CA, a server certificate for 127.0.0.1
(IP SAN), a client certificate signed by the CA, and a second CA nobody uses. The endpoint
is http.server behind ssl in a thread.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lbscrape.cli import cli
from lbscrape.core.config import RemoteWriteSettings
from lbscrape.core.errors import ConfigError, RemoteWriteError
from lbscrape.prom.remote_write import Client, load_credentials
from tests.test_run import Scene, logs

TOKEN = "tok-7f3a9c1e-DO-NOT-LOG-b64e"
PASSWORD = "pw-Zq8!x:y@DO-NOT-LOG"


# --- certificates -----------------------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, key, issuer_name: x509.Name, issuer_key, *, ca: bool = False,
          ip: str | None = None, usage=None) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    b = (x509.CertificateBuilder()
         .subject_name(_name(subject)).issuer_name(issuer_name).public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(days=1))
         .not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                        critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
             issuer_key.public_key()), critical=False))
    if ca:
        b = b.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
    if ip:
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
    if usage:
        b = b.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate | None = None, key=None,
           password: bytes | None = None) -> str:
    data = b""
    if cert is not None:
        data += cert.public_bytes(serialization.Encoding.PEM)
    if key is not None:
        enc = (serialization.BestAvailableEncryption(password) if password
               else serialization.NoEncryption())
        data += key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8, enc)
    path.write_bytes(data)
    return str(path)


@dataclass
class Pki:
    ca: str
    other_ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str
    other_key: str
    encrypted_key: str


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("lbscrape test CA", ca_key, _name("lbscrape test CA"), ca_key, ca=True)
    other_key = ec.generate_private_key(ec.SECP256R1())
    other = _cert("someone else's CA", other_key, _name("someone else's CA"), other_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _cert("127.0.0.1", server_key, ca.subject, ca_key, ip="127.0.0.1",
                   usage=ExtendedKeyUsageOID.SERVER_AUTH)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _cert("lbscrape", client_key, ca.subject, ca_key,
                   usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    return Pki(
        ca=_write(d / "ca.pem", ca), other_ca=_write(d / "other-ca.pem", other),
        server_cert=_write(d / "server.pem", server),
        server_key=_write(d / "server-key.pem", key=server_key),
        client_cert=_write(d / "client.pem", client),
        client_key=_write(d / "client-key.pem", key=client_key),
        other_key=_write(d / "other-key.pem", key=other_key),
        encrypted_key=_write(d / "encrypted-key.pem", key=client_key, password=b"secret"),
    )


# --- the HTTPS endpoint -----------------------------------------------------------------


@dataclass
class Endpoint:
    url: str = ""
    headers: list[dict[str, str]] = field(default_factory=list)
    status: int = 204
    echo_authorization: bool = False
    """Answer with a body that repeats the Authorization header (a careless proxy)."""


def _serve(pki: Pki, *, require_client_cert: bool = False):
    ep = Endpoint()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            ep.headers.append({k.lower(): v for k, v in self.headers.items()})
            body = (f"denied: {self.headers.get('Authorization')}".encode()
                    if ep.echo_authorization else b"")
            self.send_response(ep.status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.server_cert, pki.server_key)
    if require_client_cert:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(pki.ca)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    ep.url = f"https://127.0.0.1:{server.server_address[1]}/api/v1/write"
    return ep, server


@pytest.fixture
def https(pki):
    ep, server = _serve(pki)
    yield ep
    server.shutdown()
    server.server_close()


@pytest.fixture
def mtls(pki):
    ep, server = _serve(pki, require_client_cert=True)
    yield ep
    server.shutdown()
    server.server_close()


@pytest.fixture
def secrets(tmp_path):
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")  # a Secret's file often ends in a newline
    password = tmp_path / "password"
    password.write_text(PASSWORD + "\n")
    return str(token), str(password)


def client(url: str, retries: int = 0, **kw) -> Client:
    sleeps: list[float] = []
    return Client(RemoteWriteSettings(url=url, retries=retries, timeout=5, **kw),
                  sleep=sleeps.append, jitter=lambda: 0.5)


# --- what is sent -----------------------------------------------------------------------


def test_bearer_token_from_file_is_sent(https, pki, secrets):
    client(https.url, ca_file=pki.ca, bearer_token_file=secrets[0]).post(b"x")
    assert https.headers[-1]["authorization"] == f"Bearer {TOKEN}"


def test_basic_auth_from_username_and_password_file(https, pki, secrets):
    client(https.url, ca_file=pki.ca, username="writer", password_file=secrets[1]).post(b"x")
    expected = base64.b64encode(f"writer:{PASSWORD}".encode()).decode()
    assert https.headers[-1]["authorization"] == f"Basic {expected}"


def test_no_credentials_no_authorization_header(https, pki):
    client(https.url, ca_file=pki.ca).post(b"x")
    assert "authorization" not in https.headers[-1]


def test_secrets_are_not_in_a_repr(pki, secrets):
    creds = load_credentials(RemoteWriteSettings(url="https://x/", bearer_token_file=secrets[0]))
    assert TOKEN not in repr(creds)
    creds = load_credentials(RemoteWriteSettings(url="https://x/", username="u",
                                                 password_file=secrets[1]))
    assert PASSWORD not in repr(creds) and base64.b64encode(PASSWORD.encode()).decode() \
        not in repr(creds)


@pytest.mark.parametrize("kind", ["bearer", "basic"])
def test_an_echoed_credential_is_scrubbed_from_errors(https, pki, secrets, kind):
    https.status, https.echo_authorization = 401, True
    kw = ({"bearer_token_file": secrets[0]} if kind == "bearer"
          else {"username": "writer", "password_file": secrets[1]})
    with pytest.raises(RemoteWriteError) as e:
        client(https.url, ca_file=pki.ca, **kw).post(b"x")
    msg = str(e.value)
    assert "HTTP 401" in msg and "***" in msg
    assert TOKEN not in msg and PASSWORD not in msg
    assert base64.b64encode(f"writer:{PASSWORD}".encode()).decode() not in msg


# --- TLS --------------------------------------------------------------------------------


def test_verification_fails_without_the_ca_and_is_not_retried(https):
    c = client(https.url, retries=3)
    with pytest.raises(RemoteWriteError) as e:
        c.post(b"x")
    msg = str(e.value)
    assert "\n" not in msg and "Traceback" not in msg
    assert "TLS certificate verification failed" in msg and "--remote-write-ca-file" in msg
    assert c.requests == 1 and not e.value.retryable
    assert https.headers == []


def test_verification_fails_against_another_ca(https, pki):
    with pytest.raises(RemoteWriteError, match="certificate verification failed"):
        client(https.url, ca_file=pki.other_ca).post(b"x")


def test_host_name_is_verified(https, pki):
    # The certificate names 127.0.0.1 only; "localhost" is the same socket, another name.
    url = https.url.replace("127.0.0.1", "localhost")
    with pytest.raises(RemoteWriteError, match="verification failed: Hostname mismatch.*"
                       "a host name the certificate names"):
        client(url, ca_file=pki.ca).post(b"x")


def test_verification_succeeds_with_the_ca_file(https, pki):
    client(https.url, ca_file=pki.ca).post(b"x")
    assert len(https.headers) == 1


def test_mtls_succeeds_with_client_certificate(mtls, pki):
    client(mtls.url, ca_file=pki.ca, cert_file=pki.client_cert, key_file=pki.client_key).post(
        b"x")
    assert len(mtls.headers) == 1


def test_mtls_fails_without_client_certificate(mtls, pki):
    with pytest.raises(RemoteWriteError) as e:
        client(mtls.url, ca_file=pki.ca).post(b"x")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("remote write to https://127.0.0.1:")
    # TLS 1.3 reports the server's refusal as an alert when the response is read.
    assert "--remote-write-cert-file" in msg or "connection error" in msg
    assert mtls.headers == []


def test_mtls_fails_with_a_certificate_of_another_ca(mtls, pki, tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _cert("stranger", key, _name("stranger"), key)
    with pytest.raises(RemoteWriteError):
        client(mtls.url, ca_file=pki.ca, cert_file=_write(tmp_path / "c.pem", cert),
               key_file=_write(tmp_path / "k.pem", key=key)).post(b"x")
    assert mtls.headers == []


def test_start_up_line_says_how_remote_write_authenticates(https, kube, pki, secrets):
    result = CliRunner().invoke(cli, [
        "run", "--cluster", "c", "--region", "us-east-1", "--kubeconfig", kube.kubeconfig_path,
        "--log-format", "json", "--remote-write-url", https.url,
        "--remote-write-bearer-token-file", secrets[0], "--remote-write-ca-file", pki.ca,
        "--remote-write-cert-file", pki.client_cert, "--remote-write-key-file", pki.client_key])
    # No load balancers, so nothing is written and the endpoint is never contacted.
    assert result.exit_code == 0, result.stderr
    assert "remote_write_auth=bearer+ca-file+mtls" in logs(result)[0]["msg"]
    assert TOKEN not in result.stderr


# --- bad input: exit 2, one line naming the option, nothing fetched ---------------------


def _bad_inputs(tmp: Path, pki: Pki, token: str, password: str):
    missing = str(tmp / "missing")
    empty = tmp / "empty"
    empty.write_text(" \n")
    spaced = tmp / "spaced"
    spaced.write_text(f"{TOKEN} {TOKEN}\n")
    not_pem = tmp / "not-pem"
    not_pem.write_text(f"{TOKEN}\n")
    return [
        (["--remote-write-bearer-token-file", token, "--remote-write-username", "u",
          "--remote-write-password-file", password], "--remote-write-bearer-token-file", None),
        (["--remote-write-bearer-token-file", token, "--remote-write-url",
          "https://u:p@127.0.0.1:9/api/v1/write"], "--remote-write-bearer-token-file", None),
        (["--remote-write-username", "u"], "--remote-write-username", None),
        (["--remote-write-username", "", "--remote-write-password-file", password],
         "--remote-write-username", None),
        (["--remote-write-username", "a:b", "--remote-write-password-file", password],
         "--remote-write-username", None),
        (["--remote-write-password-file", password], "--remote-write-password-file", None),
        (["--remote-write-username", "u", "--remote-write-password-file", password,
          "--remote-write-url", "https://u:p@127.0.0.1:9/api/v1/write"],
         "--remote-write-username", None),
        (["--remote-write-cert-file", pki.client_cert], "--remote-write-cert-file", None),
        (["--remote-write-key-file", pki.client_key], "--remote-write-key-file", None),
        (["--remote-write-bearer-token-file", missing], "--remote-write-bearer-token-file",
         missing),
        (["--remote-write-bearer-token-file", str(empty)], "--remote-write-bearer-token-file",
         str(empty)),
        (["--remote-write-bearer-token-file", str(tmp)], "--remote-write-bearer-token-file",
         str(tmp)),
        (["--remote-write-bearer-token-file", str(spaced)], "--remote-write-bearer-token-file",
         str(spaced)),
        (["--remote-write-username", "u", "--remote-write-password-file", missing],
         "--remote-write-password-file", missing),
        (["--remote-write-username", "u", "--remote-write-password-file", str(empty)],
         "--remote-write-password-file", str(empty)),
        (["--remote-write-ca-file", missing], "--remote-write-ca-file", missing),
        (["--remote-write-ca-file", str(not_pem)], "--remote-write-ca-file", str(not_pem)),
        (["--remote-write-cert-file", missing, "--remote-write-key-file", pki.client_key],
         "--remote-write-cert-file", missing),
        (["--remote-write-cert-file", str(not_pem), "--remote-write-key-file", pki.client_key],
         "--remote-write-cert-file", str(not_pem)),
        (["--remote-write-cert-file", pki.client_cert, "--remote-write-key-file", missing],
         "--remote-write-key-file", missing),
        (["--remote-write-cert-file", pki.client_cert, "--remote-write-key-file", str(not_pem)],
         "--remote-write-key-file", str(not_pem)),
        (["--remote-write-cert-file", pki.client_cert, "--remote-write-key-file",
          pki.other_key], "--remote-write-key-file", pki.other_key),
        (["--remote-write-cert-file", pki.client_cert, "--remote-write-key-file",
          pki.encrypted_key], "--remote-write-key-file", pki.encrypted_key),
    ]


BASE = ["run", "--cluster", "c", "--region", "us-east-1",
        "--remote-write-url", "https://127.0.0.1:9/api/v1/write"]


@pytest.mark.parametrize("dry_run", [False, True])
def test_bad_auth_and_tls_options_are_one_line_exit_2(kube, pki, secrets, tmp_path, dry_run):
    cases = _bad_inputs(tmp_path, pki, *secrets)
    for args, option, path in cases:
        extra = ["--dry-run"] if dry_run else []
        result = CliRunner().invoke(cli, [*BASE, "--kubeconfig", kube.kubeconfig_path,
                                          *extra, *args])
        where = f"{args}: {result.output}"
        assert result.exit_code == 2, where
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"lbscrape: error: {option}:"), where
        if path:
            assert repr(path) in lines[0], where
        assert TOKEN not in result.output and PASSWORD not in result.output, where
        assert "Traceback" not in result.output
    assert kube.seen == []


def test_options_read_environment_variables(kube, monkeypatch, tmp_path):
    missing = str(tmp_path / "nope")
    for option in ("bearer-token-file", "ca-file"):
        name = f"LBSCRAPE_REMOTE_WRITE_{option.replace('-', '_').upper()}"
        monkeypatch.setenv(name, missing)
        result = CliRunner().invoke(cli, [*BASE, "--kubeconfig", kube.kubeconfig_path])
        monkeypatch.delenv(name)
        assert result.exit_code == 2 and f"--remote-write-{option}: cannot read" in result.stderr
    assert kube.seen == []


def test_load_credentials_raises_config_error(tmp_path):
    with pytest.raises(ConfigError, match="--remote-write-password-file"):
        load_credentials(RemoteWriteSettings(url="https://x/", username="u",
                                             password_file=str(tmp_path / "missing")))


# --- a whole run never shows the secret ------------------------------------------------


@pytest.fixture
def scene(aws, kube, prometheus):
    return Scene(aws, kube, prometheus)


def _assert_no_secret(result) -> None:
    for stream in (result.stdout, result.stderr):
        assert TOKEN not in stream
        assert base64.b64encode(TOKEN.encode()).decode() not in stream


def test_run_with_bearer_token_never_logs_it(scene, secrets):
    # Prometheus ignores Authorization, so the token travels and the samples land.
    result = scene.run(scene.clock, "--remote-write-bearer-token-file", secrets[0])
    _assert_no_secret(result)
    lines = logs(result)
    assert len(lines) == len([x for x in result.stderr.splitlines() if x.strip()])
    for line in lines:
        assert TOKEN not in json.dumps(line)
    assert "remote_write_auth=bearer" in lines[0]["msg"]
    assert "samples_written=" in lines[-1]["msg"] and "samples_written=0" not in lines[-1]["msg"]
    assert scene.prom.raw("alb_request_count_sum")


def test_dry_run_with_bearer_token_never_prints_it(scene, secrets):
    result = scene.run(scene.clock, "--dry-run", "--remote-write-bearer-token-file", secrets[0])
    _assert_no_secret(result)
    assert "alb_request_count_sum" in result.stdout  # the samples it would write
    assert not scene.prom.raw("alb_request_count_sum")


def test_failed_run_with_bearer_token_never_logs_it(scene, secrets, https, pki):
    # An endpoint that refuses with 401 and echoes the header back in its body.
    https.status, https.echo_authorization = 401, True
    result = scene.run(scene.clock, "--remote-write-bearer-token-file", secrets[0],
                       "--remote-write-ca-file", pki.ca, remote_write_url=https.url, expect=1)
    _assert_no_secret(result)
    assert https.headers and https.headers[0]["authorization"] == f"Bearer {TOKEN}"
    assert any("HTTP 401" in line["msg"] for line in logs(result))
