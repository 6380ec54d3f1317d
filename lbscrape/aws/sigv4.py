"""SigV4 for Amazon Managed Service for Prometheus: sign each remote-write request.

botocore's own signer (SigV4Auth, service `aps`) over the exact body bytes, with the
credentials of boto3's chain (IRSA in the CronJob, a profile on a laptop), or of a role
assumed from them (a workspace in another account). An assumed role's credentials are
botocore RefreshableCredentials: renewed 15 minutes before they expire (an hour by
default; the refresh is botocore's, the clock injectable), so a backfill that runs
for hours keeps signing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import RefreshableCredentials
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from lbscrape.aws import session as aws
from lbscrape.core.errors import NO_CREDENTIALS, AwsError

SERVICE = "aps"
SESSION_NAME = "lbscrape"
EXPIRED = frozenset({"ExpiredToken", "ExpiredTokenException", "RequestExpired"})


class Signer:
    """A RequestSigner (lbscrape.prom.remote_write) for one region."""

    def __init__(self, credentials: Any, region: str, role_arn: str | None = None) -> None:
        self._credentials = credentials
        self.region = region
        self.role_arn = role_arn

    def __call__(self, method: str, url: str, headers: Mapping[str, str],
                 body: bytes) -> dict[str, str]:
        req = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
        try:
            # Frozen: key, secret and token of one refresh, never a mix of two. A refresh
            # that fails raises AwsError (from _assume) once the old ones are expiring.
            frozen = self._credentials.get_frozen_credentials()
            SigV4Auth(frozen, SERVICE, self.region).add_auth(req)
        except (BotoCoreError, ClientError) as e:
            raise AwsError(explain(e, self.role_arn)) from None
        return dict(req.headers.items())


def signer(s: Any, region: str, role_arn: str | None = None,
           clock: Callable[[], datetime] | None = None) -> Signer:
    """A Signer with the session's credentials, or a role assumed with them. The role is
    assumed now, so a refusal stops a run before it fetches anything. Raises AwsError
    (one line) when there are no credentials or the role cannot be assumed."""
    source = s.get_credentials()
    if source is None:
        raise AwsError(f"--remote-write-sigv4: {NO_CREDENTIALS}")
    _quiet_refresh_failures()  # IRSA's credentials are refreshable too
    if role_arn is None:
        return Signer(source, region)
    refresh = _assume(s, role_arn)
    first = refresh()
    creds = RefreshableCredentials(
        first["access_key"], first["secret_key"], first["token"],
        datetime.fromisoformat(first["expiry_time"]), refresh_using=refresh,
        method="assume-role", time_fetcher=clock or (lambda: datetime.now(UTC)))
    return Signer(creds, region, role_arn)


def _assume(s: Any, role_arn: str) -> Callable[[], dict[str, str]]:
    """The refresh function: AssumeRole with the session's own credentials."""
    def refresh() -> dict[str, str]:
        try:
            c = aws.client(s, "sts").assume_role(RoleArn=role_arn,
                                                 RoleSessionName=SESSION_NAME)["Credentials"]
        except (BotoCoreError, ClientError) as e:
            raise AwsError(explain(e, role_arn)) from None
        return {"access_key": c["AccessKeyId"], "secret_key": c["SecretAccessKey"],
                "token": c["SessionToken"], "expiry_time": c["Expiration"].isoformat()}
    return refresh


class _OneLine(logging.Filter):
    """botocore logs a failed refresh with its traceback; lbscrape's logs are one line
    per event, and the reason (an AwsError from refresh) says what to fix."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.msg = f"{record.getMessage()} {record.exc_info[1]}"
            record.args = ()
            record.exc_info = record.exc_text = None
        return True


def _quiet_refresh_failures() -> None:
    logger = logging.getLogger("botocore.credentials")
    if not any(isinstance(f, _OneLine) for f in logger.filters):
        logger.addFilter(_OneLine())


def explain(e: Exception, role_arn: str | None) -> str:
    """One line for a credential failure, naming what to fix."""
    what = f"--remote-write-sigv4-role-arn: cannot assume {role_arn}" if role_arn \
        else "--remote-write-sigv4: cannot sign"
    if isinstance(e, NoCredentialsError):
        return f"{what}: {NO_CREDENTIALS}"
    if isinstance(e, ClientError):
        err = e.response.get("Error", {})
        code = str(err.get("Code", "")) or "error"
        text = f"{what}: {code}: {str(err.get('Message', '')).strip() or 'no message'}"
        if code in EXPIRED:
            return text + ("; the AWS credentials have expired: refresh them (a new "
                           "session, `aws sso login`) or check the role's token (IRSA)")
        if code in ("AccessDenied", "AccessDeniedException") and role_arn:
            return text + ("; the role lbscrape runs as needs sts:AssumeRole on it, and "
                           "its trust policy must allow that role")
        return text
    return f"{what}: {' '.join(str(e).split())}"
