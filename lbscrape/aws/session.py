"""The one place boto3 sessions and clients are made, with lbscrape's retry policy."""

from __future__ import annotations

import os
from typing import Any

import boto3
import botocore.config

from lbscrape.core.errors import ConfigError

# Every AWS service lbscrape makes a client of. The container image keeps only these
# botocore models (and CREDENTIAL_SERVICES'), read from here by the Dockerfile.
# sts: --remote-write-sigv4-role-arn assumes its role (lbscrape.aws.sigv4).
SERVICES = ("elbv2", "elb", "cloudwatch", "sts")
# Services botocore's own credential providers call: sts (assume role, web identity as with
# IRSA), sso, sso-oidc and signin.
CREDENTIAL_SERVICES = ("sts", "sso", "sso-oidc", "signin")
BOTOCORE_MODELS = tuple(dict.fromkeys((*SERVICES, *CREDENTIAL_SERVICES)))

# Standard retry mode: exponential backoff with jitter on throttles, 5xx and timeouts.
AWS_CONFIG = botocore.config.Config(retries={"mode": "standard", "max_attempts": 4},
                                    connect_timeout=5, read_timeout=10)


def session(region: str | None, profile: str | None = None) -> boto3.session.Session:
    """A session for `region` (else AWS_REGION, else the config chain's); ConfigError
    when none is configured."""
    # boto3 reads AWS_DEFAULT_REGION and profiles; AWS_REGION is what other SDKs
    # (and EKS pod identity) set, so honour it too.
    s = boto3.session.Session(profile_name=profile,
                              region_name=region or os.environ.get("AWS_REGION"))
    if not s.region_name:
        raise ConfigError("--region: no AWS region configured; pass --region or set "
                          "AWS_REGION")
    return s


def client(s: boto3.session.Session, service: str) -> Any:
    """A client of `service` (one of SERVICES) with lbscrape's retries and timeouts."""
    if service not in SERVICES:
        # The image ships only these models: a new service must be added to SERVICES.
        raise ValueError(f"{service} is not in lbscrape.aws.session.SERVICES")
    return s.client(service, config=AWS_CONFIG)
