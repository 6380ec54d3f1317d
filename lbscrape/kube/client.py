"""The Kubernetes connection: client construction and one-line API errors."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any, TypeVar

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from lbscrape.core.errors import ConfigError, KubeError

SA_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
T = TypeVar("T")
REQUEST_TIMEOUT = (5, 20)  # connect, read seconds: a hung API server must not hang the run


def make_api_client(kubeconfig: str | None, context: str | None) -> tuple[k8s.ApiClient, str]:
    """Build a client and return it with the namespace lbscrape runs in.

    Inside a pod (and with no explicit kubeconfig) the in-cluster config and the
    service-account namespace are used; elsewhere KUBECONFIG / ~/.kube/config and the
    context's namespace.
    """
    cfg = k8s.Configuration()
    try:
        if kubeconfig is None and context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            k8s_config.load_incluster_config(client_configuration=cfg)
            with open(SA_NAMESPACE_FILE) as f:
                namespace = f.read().strip()
        else:
            k8s_config.load_kube_config(config_file=kubeconfig, context=context,
                                        client_configuration=cfg)
            contexts, active = k8s_config.list_kube_config_contexts(config_file=kubeconfig)
            if context:
                active = next((c for c in contexts if c["name"] == context), active)
            namespace = (active or {}).get("context", {}).get("namespace") or "default"
    except (ConfigException, OSError) as e:
        where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise ConfigError(
            f"--kubeconfig: cannot load Kubernetes config from {where}"
            f"{f' (context {context})' if context else ''}: {_one_line(str(e))}"
        ) from e
    return k8s.ApiClient(cfg), namespace


def call_api(what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call a kubernetes client method; turn its failures into a one-line KubeError."""
    kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
    try:
        return fn(*args, **kwargs)
    except ApiException as e:
        status = e.status or 0
        if status == 403:
            raise KubeError(
                f"Kubernetes API: {what}: forbidden (403); grant it to lbscrape's "
                "ServiceAccount (see cronjob/rbac.yaml)",
                status=status,
            ) from e
        if status == 401:
            raise KubeError(
                f"Kubernetes API: {what}: unauthorized (401); the credentials in the "
                "kubeconfig or service account were rejected",
                status=status,
            ) from e
        raise KubeError(
            f"Kubernetes API: {what}: {status} {e.reason}: {_status_message(e.body)}",
            status=status,
        ) from e
    except (urllib3.exceptions.HTTPError, OSError) as e:
        raise KubeError(f"Kubernetes API unreachable: {what}: {_one_line(str(e))}") from e


def _status_message(body: Any) -> str:
    try:
        return str(json.loads(body).get("message", "")) or "no message"
    except (TypeError, ValueError, AttributeError):
        return _one_line(str(body or "no message"))[:200]


def _one_line(text: str) -> str:
    return " ".join(text.split())
