"""Option sets several commands share, each handed to the command as one dataclass.

Every option has an LBSCRAPE_* environment variable (the CronJob is configured with
them) and shows its default in --help.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from lbscrape.core.console import Console
from lbscrape.core.options import (
    DEFAULT_CHECKPOINT_NAME,
    CheckpointOptions,
    KubeOptions,
    RemoteWriteOptions,
    SelectionOptions,
)

F = TypeVar("F", bound=Callable[..., Any])

OUTPUT_CHOICE = click.Choice(["table", "json"])


class _Lines(click.ParamType[str]):
    """A repeatable option whose env var holds one value per line (a header value may
    have spaces: `Authorization=ApiKey abc`). Blank lines are ignored."""

    name = "text"
    envvar_list_splitter = "\n"

    def split_envvar_value(self, rv: str) -> list[str]:
        return [line.strip() for line in rv.splitlines() if line.strip()]


LINES = _Lines()


def opt(*decls: str, **kwargs: Any) -> Callable[[F], F]:
    """click.option with an LBSCRAPE_<NAME> environment variable (or `envvar=`) and the
    default shown."""
    name = decls[0].split("/")[0].lstrip("-").replace("-", "_").upper()
    kwargs.setdefault("show_default", True)
    kwargs.setdefault("envvar", f"LBSCRAPE_{name}")
    return click.option(*decls, show_envvar=True, **kwargs)


def output_option(f: F) -> F:
    return click.option("-o", "--output", type=OUTPUT_CHOICE, default="table",
                        show_default=True)(f)


def _grouped(decorators: list[Callable[[Any], Any]], argument: str, cls: type[Any],
             prefix: str, fields: dict[str, str] | None = None) -> Callable[[F], F]:
    """Adds `decorators`; the command gets their values as one `cls` in `argument`.
    Each field of `cls` comes from the parameter prefix + field (or fields[field])."""

    def decorate(f: F) -> F:
        @functools.wraps(f)
        def command(*args: Any, **kwargs: Any) -> Any:
            kwargs[argument] = cls(**{
                fld.name: kwargs.pop((fields or {}).get(fld.name, prefix + fld.name))
                for fld in dataclasses.fields(cls)})
            return f(*args, **kwargs)

        wrapped: Any = command
        for decorator in reversed(decorators):
            wrapped = decorator(wrapped)
        return wrapped  # type: ignore[no-any-return]

    return decorate


remote_write_options = _grouped([
    opt("--remote-write-timeout", default="10s", help="Timeout of one remote-write request."),
    opt("--remote-write-retries", default=3, type=click.IntRange(0, 10),
        help="Retries of a request on 5xx, 429 and connection errors."),
    opt("--remote-write-max-samples", default=20_000, type=click.IntRange(1),
        help="Samples per request at most (receivers limit request size)."),
    opt("--remote-write-bearer-token-file", default=None, metavar="PATH",
        help="Send 'Authorization: Bearer' with the token in this file (e.g. a mounted "
             "Secret)."),
    opt("--remote-write-username", default=None,
        help="Basic auth user name; the password comes from --remote-write-password-file."),
    opt("--remote-write-password-file", default=None, metavar="PATH",
        help="File holding the basic auth password (with --remote-write-username)."),
    opt("--remote-write-ca-file", default=None, metavar="PATH",
        help="PEM CA bundle to verify the endpoint with, instead of the system's. TLS "
             "verification is always on."),
    opt("--remote-write-cert-file", default=None, metavar="PATH",
        help="PEM client certificate for mTLS (with --remote-write-key-file)."),
    opt("--remote-write-key-file", default=None, metavar="PATH",
        help="PEM private key of --remote-write-cert-file, unencrypted."),
    opt("--remote-write-header", "remote_write_headers", multiple=True, type=LINES,
        metavar="NAME=VALUE",
        help="Send this header on every request, e.g. THANOS-TENANT=team-a (repeatable; "
             "in the env var, one per line)."),
    opt("--remote-write-header-file", "remote_write_header_files", multiple=True,
        type=LINES, metavar="NAME=PATH",
        help="Send header NAME with the value read from PATH, e.g. a mounted Secret; never "
             "logged (repeatable; in the env var, one per line)."),
    opt("--remote-write-tenant", default=None, metavar="ID",
        help="Tenant for Mimir, Cortex and Grafana Enterprise Metrics: sent as "
             "X-Scope-OrgID."),
    opt("--remote-write-sigv4", is_flag=True, default=False,
        help="Sign requests with AWS SigV4 (service aps) for Amazon Managed Prometheus, "
             "with the credentials of the AWS config chain (IRSA, a profile)."),
    opt("--remote-write-sigv4-region", default=None, metavar="REGION",
        help="Signing region (default: from an aps-workspaces.REGION.amazonaws.com URL, "
             "else the AWS region)."),
    opt("--remote-write-sigv4-role-arn", default=None, metavar="ARN",
        help="Assume this role before signing (a workspace in another account); "
             "refreshed before it expires."),
], "remote_write", RemoteWriteOptions, "remote_write_")

selection_options = _grouped([
    opt("--namespace", "namespaces", multiple=True, metavar="NS",
        help="Only objects in this namespace (repeatable; in the env var, separate by "
             "spaces). Default: all."),
    opt("--exclude-namespace", "exclude_namespaces", multiple=True, metavar="NS",
        help="Never objects in this namespace (repeatable)."),
], "selection", SelectionOptions, "")

kube_options = _grouped([
    opt("--kubeconfig", default=None, help="Kubeconfig file (default: in-cluster, else "
        "KUBECONFIG or ~/.kube/config)."),
    opt("--context", default=None, help="Kubeconfig context."),
], "kube", KubeOptions, "")


def checkpoint_options(help_configmap: str | None = None,
                       help_file: str | None = None) -> Callable[[F], F]:
    """--checkpoint-configmap and --checkpoint-file, as one CheckpointOptions."""
    return _grouped([
        opt("--checkpoint-configmap", default=None, metavar="NAMESPACE/NAME",
            help=help_configmap or f"ConfigMap holding checkpoints (default: "
                 f"{DEFAULT_CHECKPOINT_NAME} in the pod's namespace, or the kubeconfig "
                 "context's namespace)."),
        opt("--checkpoint-file", default=None, metavar="PATH",
            help=help_file or "Keep checkpoints in this local JSON file instead of a "
                 "ConfigMap (laptops, CI)."),
    ], "checkpoint", CheckpointOptions, "checkpoint_")


def region_option(f: F) -> F:
    return opt("--region", default=None, help="AWS region (default: the AWS config chain).")(f)


def log_format_option(f: F) -> F:
    return opt("--log-format", type=click.Choice(["json", "text"]), default=None,
               help="Log format (default: json unless stderr is a terminal).")(f)


def now_option(f: F) -> F:
    return opt("--now", default=None, hidden=True,
               help="Pretend it is this time (RFC 3339 or epoch seconds); never later than "
                    "the clock.")(f)


def console() -> Console:
    """The terminal, through click (which copes with pipes and encodings)."""
    return Console(out=click.echo, err=lambda line: click.echo(line, err=True),
                   confirm=lambda question: click.confirm(question, err=True))


LABEL_FROM_HELP = ("Copy the owner's Kubernetes label KEY (or annotation, as annotation:KEY) "
                   "into the Prometheus label LABEL, e.g. app.kubernetes.io/name=job "
                   "(repeatable; several for one LABEL: the first the owner has).")
