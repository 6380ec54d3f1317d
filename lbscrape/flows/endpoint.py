"""The remote-write endpoint's client for the commands: the prom side's Client, with the
AWS side's SigV4 signer when --remote-write-sigv4 asks for it (the two sides meet here,
through the prom side's RequestSigner interface)."""

from __future__ import annotations

from typing import Any

from lbscrape.aws import sigv4
from lbscrape.core.budget import Budget
from lbscrape.core.config import RemoteWriteSettings, redact_url, sigv4_region
from lbscrape.prom import remote_write


def client(rw: RemoteWriteSettings, session: Any, credentials: remote_write.Credentials,
           budget: Budget | None = None) -> remote_write.Client:
    """Raises AwsError (one line) when SigV4 has no credentials or cannot assume its
    role."""
    signer = sigv4.signer(session, sigv4_region(rw, session.region_name),
                          rw.sigv4_role_arn) if rw.sigv4 else None
    return remote_write.Client(rw, budget=budget, credentials=credentials, signer=signer)


def auth_kind(rw: RemoteWriteSettings | None, aws_region: str) -> str:
    """How remote write authenticates, for the start-up line: kinds, never secrets."""
    if rw is None:
        return "-"
    if rw.sigv4:
        role = f",role={rw.sigv4_role_arn}" if rw.sigv4_role_arn else ""
        kinds = [f"sigv4(region={sigv4_region(rw, aws_region)}{role})"]
    else:
        kinds = ["bearer" if rw.bearer_token_file else "basic"
                 if rw.password_file or "@" in redact_url(rw.url) else "none"]
    if rw.ca_file:
        kinds.append("ca-file")
    if rw.cert_file:
        kinds.append("mtls")
    return "+".join(kinds)


def header_names(rw: RemoteWriteSettings | None) -> str:
    """The extra headers' names (values may be credentials): 'X-Scope-OrgID,THANOS-TENANT'."""
    if rw is None:
        return ""
    names = [n for n, _ in rw.headers] + [n for n, _ in rw.header_files]
    return ",".join(names + (["X-Scope-OrgID"] if rw.tenant else []))
