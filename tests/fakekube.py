"""A small fake Kubernetes API server over real HTTP, for the real `kubernetes` client.

A generic in-memory REST store: list (label/field selectors, limit/continue), get,
create, replace (resourceVersion compare-and-swap -> 409), merge patch, delete, and
Kubernetes Status errors. Faults can be injected per method and path. Every request is
recorded as (verb, resource, namespace) so tests can check what the code really did.

SelfSubjectAccessReviews are answered like a real API server's RBAC authorizer: every
request is allowed until a test calls grant_only() (RBAC rules, as in a Role or
ClusterRole) or deny(). The policy applies only to reviews: the other requests are not
authorized, so a test that wants a 403 injects it with inject().

It knows no schemas and no defaults: objects come back exactly as they were stored.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.loopback import LoopbackServer

CONFIGMAP_LIMIT = 1024 * 1024  # the API server's limit on a ConfigMap's data
CLUSTER_SCOPED = {"ingressclasses", "namespaces", "nodes", "selfsubjectaccessreviews"}
KINDS = {
    "ingresses": "Ingress", "ingressclasses": "IngressClass", "services": "Service",
    "configmaps": "ConfigMap", "events": "Event", "namespaces": "Namespace",
    "targetgroupbindings": "TargetGroupBinding",
}


@dataclass
class Fault:
    method: str
    path_re: str
    status: int
    times: int = 1
    message: str = "injected fault"


@dataclass(frozen=True)
class Grant:
    """One RBAC PolicyRule, bound in `namespace` by a RoleBinding, or cluster-wide
    (namespace None) by a ClusterRoleBinding."""

    verbs: tuple[str, ...]
    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    resource_names: tuple[str, ...] = ()
    namespace: str | None = None

    def allows(self, a: dict[str, Any]) -> bool:
        # As the RBAC authorizer: resourceNames, when given, must name the object, so a
        # request without a name (list, create) is not allowed by such a rule; a Role
        # never allows a request across all namespaces (namespace "").
        return (_in(a.get("verb", ""), self.verbs) and _in(a.get("group", ""), self.api_groups)
                and _in(a.get("resource", ""), self.resources)
                and (not self.resource_names or a.get("name", "") in self.resource_names)
                and (self.namespace is None or self.namespace == a.get("namespace", "")))


@dataclass(frozen=True)
class Denial:
    verb: str
    resource: str
    namespace: str | None
    name: str | None
    reason: str

    def matches(self, a: dict[str, Any]) -> bool:
        return (a.get("verb") == self.verb and a.get("resource") == self.resource
                and self.namespace in (None, a.get("namespace", ""))
                and self.name in (None, a.get("name", "")))


def _in(value: str, allowed: tuple[str, ...]) -> bool:
    return value in allowed or "*" in allowed


@dataclass(frozen=True)
class Seen:
    verb: str
    api: str  # "v1" or "group/version"
    resource: str
    namespace: str | None


class FakeKube(LoopbackServer):
    def __init__(self, token: str = "test-token") -> None:
        self.token = token
        self._objects: dict[tuple[str, str], dict[tuple[str | None, str], dict[str, Any]]] = {}
        self._rv = itertools.count(1000)
        self._lock = threading.Lock()
        self.faults: list[Fault] = []
        self.seen: list[Seen] = []
        self.grants: list[Grant] | None = None  # None: every review is allowed
        self.denials: list[Denial] = []
        self.reviews: list[dict[str, Any]] = []  # spec.resourceAttributes of each review
        self.absent_apis: set[str] = set()  # group/version the server does not serve

    def remove_api(self, api: str) -> None:
        """Serve nothing of `api` ("group/version"), as a cluster without that CRD: 404."""
        with self._lock:
            self.absent_apis.add(api)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(_Handler):
            kube = fake

        return Handler

    def write_kubeconfig(self, path: str, namespace: str = "monitoring",
                         server: str | None = None) -> str:
        """`server`: another address to reach this API at (a proxy in front of it)."""
        doc = {
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": server or self.url}}],
            "users": [{"name": "fake", "user": {"token": self.token}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake",
                                                      "namespace": namespace}}],
        }
        with open(path, "w") as f:
            json.dump(doc, f)
        return path

    # --- direct store access for tests -----------------------------------------------
    def put(self, api: str, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or overwrite an object, bypassing the API (seeding)."""
        with self._lock:
            return self._store(api, resource, copy.deepcopy(obj))

    def get(self, api: str, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        with self._lock:
            obj = self._objects.get((api, resource), {}).get((namespace, name))
            return copy.deepcopy(obj) if obj else None

    def delete(self, api: str, resource: str, namespace: str | None, name: str) -> None:
        with self._lock:
            self._objects.get((api, resource), {}).pop((namespace, name), None)

    def inject(self, method: str, path_re: str, status: int, times: int = 1,
               message: str = "injected fault") -> None:
        with self._lock:
            self.faults.append(Fault(method.upper(), path_re, status, times, message))

    def grant_only(self, grants: list[Grant]) -> None:
        """From now on a review is allowed only if one of `grants` allows it."""
        with self._lock:
            self.grants = list(grants)

    def deny(self, verb: str, resource: str, namespace: str | None = None,
             name: str | None = None, reason: str = "") -> None:
        """Reviews of `verb` on `resource` (in `namespace`, of `name`; None: any) are not
        allowed. RBAC gives no reason for what it does not allow, hence the empty default."""
        with self._lock:
            self.denials.append(Denial(verb, resource, namespace, name, reason))

    def _review(self, body: dict[str, Any] | None) -> tuple[int, dict[str, Any]]:
        """A SelfSubjectAccessReview: the spec echoed, status.allowed per the policy."""
        spec = (body or {}).get("spec") or {}
        attrs = spec.get("resourceAttributes")
        if (attrs is None) == (spec.get("nonResourceAttributes") is None):
            return _status(422, "Invalid", "SelfSubjectAccessReview.authorization.k8s.io is "
                           "invalid: spec.resourceAttributes: Invalid value: \"null\": exactly "
                           "one of nonResourceAttributes or resourceAttributes must be specified")
        status: dict[str, Any] = {"allowed": False}
        if attrs is not None:
            self.reviews.append(copy.deepcopy(attrs))
            denial = next((d for d in self.denials if d.matches(attrs)), None)
            if denial:
                if denial.reason:
                    status["reason"] = denial.reason
            elif self.grants is None or any(g.allows(attrs) for g in self.grants):
                status = {"allowed": True, "reason": "RBAC: allowed by fakekube policy"}
        elif self.grants is None:
            status = {"allowed": True, "reason": "RBAC: allowed by fakekube policy"}
        return 201, {"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
                     "metadata": {"creationTimestamp": None}, "spec": spec, "status": status}

    def _store(self, api: str, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        md = obj.setdefault("metadata", {})
        if resource in CLUSTER_SCOPED:
            md.pop("namespace", None)
        md["resourceVersion"] = str(next(self._rv))
        md.setdefault("uid", str(uuid.uuid4()))
        md.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
        self._objects.setdefault((api, resource), {})[(md.get("namespace"), md["name"])] = obj
        return copy.deepcopy(obj)

    # --- request handling (called from the HTTP handler) -----------------------------
    def handle(self, method: str, path: str, query: dict[str, list[str]],
               body: dict[str, Any] | None, auth: str | None) -> tuple[int, dict[str, Any]]:
        route = _route(path)
        if route is None:
            return _status(404, "NotFound", f"the server could not find the requested resource {path}")
        api, ns, resource, name = route
        verb = {"GET": "get" if name else "list", "POST": "create", "PUT": "update",
                "PATCH": "patch", "DELETE": "delete"}.get(method, method.lower())
        with self._lock:
            self.seen.append(Seen(verb, api, resource, ns))
            for f in self.faults:
                if f.times > 0 and f.method in (method, "*") and re.search(f.path_re, path):
                    f.times -= 1
                    reason = {403: "Forbidden", 404: "NotFound", 409: "Conflict",
                              500: "InternalError", 503: "ServiceUnavailable"}.get(f.status, "")
                    return _status(f.status, reason, f.message)
            if self.token and auth != f"Bearer {self.token}":
                return _status(401, "Unauthorized", "Unauthorized")
            if api in self.absent_apis:
                return _status(404, "NotFound", "the server could not find the requested "
                               "resource")
            if resource == "selfsubjectaccessreviews":
                if verb != "create":
                    return _status(405, "MethodNotAllowed", "the server does not allow this "
                                   "method on the requested resource")
                return self._review(body)
            items = self._objects.setdefault((api, resource), {})
            if verb == "list":
                return 200, self._list(api, resource, ns, query, items)
            if verb == "get":
                obj = items.get((ns, name))
                if obj is None:
                    return _status(404, "NotFound", f'{resource} "{name}" not found', name, resource)
                return 200, copy.deepcopy(obj)
            if verb in ("create", "update", "patch") and resource == "configmaps" and body:
                size = sum(len(k) + len(str(v)) for k, v in (body.get("data") or {}).items())
                if size > CONFIGMAP_LIMIT:
                    return _status(422, "Invalid", f'ConfigMap "{name or ""}" is invalid: '
                                   f"[]: Too long: must have at most {CONFIGMAP_LIMIT} bytes")
            if verb == "create":
                assert body is not None
                body.setdefault("metadata", {})
                if ns:
                    body["metadata"]["namespace"] = ns
                key = (ns, body["metadata"].get("name", ""))
                if key in items:
                    return _status(409, "AlreadyExists",
                                   f'{resource} "{key[1]}" already exists', key[1], resource)
                body["metadata"].pop("resourceVersion", None)
                return 201, self._store(api, resource, body)
            if verb in ("update", "patch"):
                assert body is not None
                current = items.get((ns, name))
                if current is None:
                    return _status(404, "NotFound", f'{resource} "{name}" not found', name, resource)
                want = (body.get("metadata") or {}).get("resourceVersion")
                if want and want != current["metadata"]["resourceVersion"]:
                    return _status(409, "Conflict",
                                   f'Operation cannot be fulfilled on {resource} "{name}": the '
                                   "object has been modified; please apply your changes to the "
                                   "latest version and try again", name, resource)
                new = body if verb == "update" else _merge(copy.deepcopy(current), body)
                new.setdefault("metadata", {}).update(
                    name=name, uid=current["metadata"]["uid"],
                    creationTimestamp=current["metadata"]["creationTimestamp"])
                if ns:
                    new["metadata"]["namespace"] = ns
                return 200, self._store(api, resource, new)
            if verb == "delete":
                obj = items.pop((ns, name), None)
                if obj is None:
                    return _status(404, "NotFound", f'{resource} "{name}" not found', name, resource)
                return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}
        return _status(405, "MethodNotAllowed", f"{method} is not supported")

    def _list(self, api: str, resource: str, ns: str | None, query: dict[str, list[str]],
              items: dict[tuple[str | None, str], dict[str, Any]]) -> dict[str, Any]:
        selected = [
            o for (ons, _), o in sorted(items.items(), key=lambda kv: (kv[0][0] or "", kv[0][1]))
            if (ns is None or ons == ns)
            and _labels_match(o, query.get("labelSelector", [""])[0])
            and _fields_match(o, query.get("fieldSelector", [""])[0])
        ]
        start = int(query.get("continue", ["0"])[0] or 0)
        limit = int(query.get("limit", ["0"])[0] or 0)
        page = selected[start:start + limit] if limit else selected[start:]
        md: dict[str, Any] = {"resourceVersion": str(next(self._rv))}
        if limit and start + limit < len(selected):
            md["continue"] = str(start + limit)
        kind = KINDS.get(resource, resource.capitalize())
        return {"kind": f"{kind}List", "apiVersion": api, "metadata": md,
                "items": copy.deepcopy(page)}


class _Handler(BaseHTTPRequestHandler):
    kube: FakeKube
    protocol_version = "HTTP/1.1"

    def _do(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            self._send(*_status(400, "BadRequest", "body is not JSON"))
            return
        self._send(*self.kube.handle(self.command, parts.path, parse_qs(parts.query), body,
                                     self.headers.get("Authorization")))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _do

    def _send(self, code: int, doc: dict[str, Any]) -> None:
        data = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


def _route(path: str) -> tuple[str, str | None, str, str | None] | None:
    segs = [s for s in path.split("/") if s]
    if segs[:2] == ["api", "v1"]:
        api, rest = "v1", segs[2:]
    elif len(segs) >= 3 and segs[0] == "apis":
        api, rest = f"{segs[1]}/{segs[2]}", segs[3:]
    else:
        return None
    ns = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        ns, rest = rest[1], rest[2:]
    if not rest or len(rest) > 2:
        return None
    return api, ns, rest[0], rest[1] if len(rest) == 2 else None


def _status(code: int, reason: str, message: str, name: str | None = None,
            kind: str | None = None) -> tuple[int, dict[str, Any]]:
    doc: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                           "status": "Failure", "message": message, "reason": reason, "code": code}
    if name:
        doc["details"] = {"name": name, "kind": kind}
    return code, doc


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 JSON merge patch."""
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        elif isinstance(v, dict) and isinstance(target.get(k), dict):
            _merge(target[k], v)
        else:
            target[k] = copy.deepcopy(v)
    return target


def _labels_match(obj: dict[str, Any], selector: str) -> bool:
    labels = obj.get("metadata", {}).get("labels") or {}
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k) == v:
                return False
        elif "=" in term:
            k, v = term.split("=", 1)
            if labels.get(k) != v.lstrip("="):
                return False
        elif labels.get(term) is None:
            return False
    return True


def _fields_match(obj: dict[str, Any], selector: str) -> bool:
    md = obj.get("metadata", {})
    fields = {"metadata.name": md.get("name"), "metadata.namespace": md.get("namespace")}
    for term in filter(None, (t.strip() for t in selector.split(","))):
        k, _, v = term.partition("=")
        if fields.get(k) != v.lstrip("="):
            return False
    return True
