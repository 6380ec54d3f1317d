"""The checkpoint ConfigMap: compare-and-swap on resourceVersion, merge on conflict.

The format and merge rules are in lbscrape.core.checkpoint; this is only the store.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from kubernetes import client as k8s

from lbscrape.core.checkpoint import DATA_KEY, Checkpoint, SavingStore, decode, encode
from lbscrape.core.config import CheckpointLocation
from lbscrape.core.errors import CheckpointError, KubeError
from lbscrape.kube.client import call_api

log = logging.getLogger(__name__)

CAS_ATTEMPTS = 5
# Conflicts are retried at once and more often: each conflict round has a winner, which is
# done, so N writers at once (the shards of an Indexed Job, each from a base the others made
# stale) all store within N + 1 attempts.
CONFLICT_ATTEMPTS = 10


class ConfigMapStore(SavingStore):
    def __init__(self, api: k8s.ApiClient, location: CheckpointLocation,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._core = k8s.CoreV1Api(api)
        self._sleep = sleep
        self.location = location
        self._object: k8s.V1ConfigMap | None = None  # as last read, to keep its metadata

    def load(self) -> Checkpoint:
        loc = self.location
        try:
            cm = call_api(f"get configmap {loc}", self._core.read_namespaced_config_map,
                          loc.name, loc.namespace)
        except KubeError as e:
            if e.status == 404:
                return Checkpoint()
            raise CheckpointError(f"cannot read checkpoint: {e}") from e
        text = (cm.data or {}).get(DATA_KEY)
        ends = decode(text, str(loc)) if text is not None else {}
        self._object = cm
        return Checkpoint(ends, _rv(cm))

    def update(self, base: Checkpoint,
               apply: Callable[[Mapping[str, int]], dict[str, int]]) -> Checkpoint:
        """Store apply(stored checkpoints), compare-and-swap; on a conflict re-read and
        apply again. Returns what was stored."""
        loc = self.location
        current = base
        backoff = 0.25
        last: KubeError | None = None
        conflicts = errors = 0
        while conflicts < CONFLICT_ATTEMPTS and errors < CAS_ATTEMPTS:
            ends = apply(current.ends)
            stored_cm = self._object
            if current.resource_version is not None and stored_cm is not None \
                    and _rv(stored_cm) == current.resource_version:
                # Replace keeps labels, annotations and other keys people or kubectl added.
                body = stored_cm
                body.data = {**(body.data or {}), DATA_KEY: encode(ends)}
            else:
                body = k8s.V1ConfigMap(
                    metadata=k8s.V1ObjectMeta(
                        name=loc.name, namespace=loc.namespace,
                        resource_version=current.resource_version,
                        labels={"app.kubernetes.io/managed-by": "lbscrape"},
                    ),
                    data={DATA_KEY: encode(ends)},
                )
            try:
                if current.resource_version is None:
                    stored = call_api(f"create configmap {loc}",
                                      self._core.create_namespaced_config_map, loc.namespace, body)
                else:
                    stored = call_api(f"update configmap {loc}",
                                      self._core.replace_namespaced_config_map,
                                      loc.name, loc.namespace, body)
                return Checkpoint(ends, _rv(stored))
            except KubeError as e:
                last = e
                if e.status == 409:
                    conflicts += 1
                    log.info("checkpoint %s changed underneath (409); re-reading and merging", loc)
                    current = self.load()
                elif e.status is None or e.status >= 500 or e.status == 429:
                    # The samples are already written: a lost checkpoint means the next run
                    # repeats the window, which is safe but costly, so try a little harder.
                    errors += 1
                    log.info("storing checkpoint %s: %s; retrying", loc, e)
                    self._sleep(backoff)
                    backoff *= 2
                else:
                    raise CheckpointError(f"cannot store checkpoint: {e}") from e
        raise CheckpointError(
            f"cannot store checkpoint {loc} after {conflicts + errors} attempts: {last}"
        )


def _rv(cm: k8s.V1ConfigMap) -> str | None:
    return cm.metadata.resource_version if cm.metadata else None
