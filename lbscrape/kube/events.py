"""Warning Events on the Ingresses and Services lbscrape cannot serve as asked (no load
balancer found, invalid lbscrape annotations), so `kubectl describe` tells the owner.

Once per change of state, not every minute, although each run is a fresh process. The
memory is the API server's own: an Event's name is derived from the object's UID, the
reason and the message, so recording an unchanged state again is a create that answers
409 AlreadyExists and changes nothing, while a new problem or a changed message is a new
name and a new Event. That costs one request per object with a problem per run and only
`create` on events. The alternatives cost more: listing Events to compare needs `list`
on every namespace's Events (other components' too) and one more call per run; a record
in the checkpoint ConfigMap is lost with --checkpoint-file or a failed save (and then
repeats Events), and would stay silent once the API server has expired the Event while
the problem lasts. Here, when the API server deletes the Event after its --event-ttl
(1h by default), a problem that lasts is recorded again within a minute, so `kubectl
describe` keeps showing it.

Recording never fails a run. Failures are logged; 401/403 (no RBAC grant) or an
unreachable API server stops this run's remaining Events with one warning.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from kubernetes import client as k8s

from lbscrape.core.budget import Budget
from lbscrape.core.errors import KubeError
from lbscrape.core.model import Owner
from lbscrape.kube.client import REQUEST_TIMEOUT, call_api

log = logging.getLogger(__name__)

COMPONENT = "lbscrape"
LOAD_BALANCER_NOT_FOUND = "LoadBalancerNotFound"
API_VERSION = {"Ingress": "networking.k8s.io/v1", "Service": "v1"}
MAX_MESSAGE = 1024  # events.k8s.io's limit on a note; kept for core Events too
_NAME_PREFIX_MAX = 200  # of the object's name; the Event name stays under 253


@dataclass(frozen=True)
class Notice:
    """One Warning Event to record on `owner`."""

    owner: Owner
    reason: str
    message: str


@dataclass
class Outcome:
    recorded: int = 0
    already: int = 0
    """Unchanged since an earlier run: the Event exists."""
    failed: int = 0


def gather(items: Iterable[tuple[Owner, str, str]]) -> list[Notice]:
    """(owner, reason, message) -> one Notice per owner and reason, messages joined in
    the order given (so an unchanged state gives the same message, hence the same name)."""
    by_key: dict[tuple[Owner, str], list[str]] = {}
    for owner, reason, message in items:
        msgs = by_key.setdefault((owner, reason), [])
        if message not in msgs:
            msgs.append(message)
    out = []
    for (owner, reason), msgs in by_key.items():
        text = "; ".join(msgs)
        if len(text) > MAX_MESSAGE:
            text = text[:MAX_MESSAGE - 3] + "..."
        out.append(Notice(owner, reason, text))
    return out


def event_name(n: Notice) -> str:
    """Deterministic: the same object (UID), reason and message give the same name."""
    key = "\0".join((n.owner.uid, n.owner.kind, n.owner.namespace, n.owner.name, n.reason,
                     n.message))
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{n.owner.name[:_NAME_PREFIX_MAX].rstrip('.-')}.{COMPONENT}-{digest}"


def event(n: Notice, now: int) -> k8s.CoreV1Event:
    at = datetime.fromtimestamp(now, UTC)
    o = n.owner
    return k8s.CoreV1Event(
        metadata=k8s.V1ObjectMeta(name=event_name(n), namespace=o.namespace),
        involved_object=k8s.V1ObjectReference(
            kind=o.kind, api_version=API_VERSION[o.kind], namespace=o.namespace,
            name=o.name, uid=o.uid or None),
        reason=n.reason, message=n.message, type="Warning",
        source=k8s.V1EventSource(component=COMPONENT), reporting_component=COMPONENT,
        first_timestamp=at, last_timestamp=at, count=1,
    )


class Recorder:
    def __init__(self, api: k8s.ApiClient) -> None:
        self._core = k8s.CoreV1Api(api)

    def record(self, notices: Sequence[Notice], now: int,
               budget: Budget | None = None) -> Outcome:
        out = Outcome()
        for i, n in enumerate(notices):
            left = len(notices) - i
            timeout: tuple[float, float] = REQUEST_TIMEOUT
            if budget is not None:
                remaining = budget.remaining()
                if remaining < 1:
                    log.warning("%s; %d Kubernetes Events not recorded this run", budget.reason,
                                left)
                    out.failed += left
                    break
                timeout = (min(REQUEST_TIMEOUT[0], remaining), min(REQUEST_TIMEOUT[1], remaining))
            try:
                call_api(f"create events in namespace {n.owner.namespace}",
                         self._core.create_namespaced_event, n.owner.namespace, event(n, now),
                         _request_timeout=timeout)
            except KubeError as e:
                if e.status == 409:
                    out.already += 1
                    continue
                if e.status is None or e.status in (401, 403):
                    # Every further try would get the same answer (or wait as long).
                    log.warning("cannot record Kubernetes Events: %s; %d Events not recorded "
                                "this run (metrics are not affected; --no-events turns "
                                "Events off)", e, left)
                    out.failed += left
                    break
                out.failed += 1
                log.warning("cannot record the %s Event on %s: %s", n.reason, n.owner, e)
                continue
            out.recorded += 1
            log.info("recorded Warning Event %s on %s: %s", n.reason, n.owner, n.message)
        return out
