"""ConfigMapStore against the fake API server: size, pruning, concurrent writers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from lbscrape.core.config import CheckpointLocation
from lbscrape.core.errors import CheckpointError
from lbscrape.kube.checkpoint_store import ConfigMapStore
from lbscrape.kube.client import make_api_client
from tests.test_run import Scene, end_for

LOC = CheckpointLocation("monitoring", "lbscrape-checkpoint")


def store(kube):
    api, _ = make_api_client(kube.kubeconfig_path, None)
    return ConfigMapStore(api, LOC)


def realistic_key(i):
    # aws-load-balancer-controller names: k8s-<ns8>-<name8>-<hash10>, 16-hex id.
    return f"app/k8s-namespac-ingressn-{i:010x}/{i:016x}"


def test_five_thousand_load_balancers_fit_well_under_the_limit(kube):
    now = int(time.time()) // 60 * 60
    s = store(kube)
    s.save(s.load(), {realistic_key(i): now for i in range(5000)})
    text = kube.get("v1", "configmaps", "monitoring", "lbscrape-checkpoint")["data"][
        "checkpoint.json"]
    print(f"5,000 load balancers: {len(text):,} bytes")
    assert len(text) < 512 * 1024
    assert len(store(kube).load().ends) == 5000


def test_the_fake_api_server_enforces_the_configmap_limit(kube):
    s = store(kube)
    with pytest.raises(CheckpointError, match="Too long"):
        s.save(s.load(), {f"app/{'x' * 200}/{i}": 0 for i in range(6000)})


def test_gone_load_balancers_are_forgotten_after_the_retention(kube):
    s = store(kube)
    now = 10_000_000
    s.save(s.load(), {"gone-long-ago": now - 8 * 86400, "gone-yesterday": now - 86400,
                      "present-but-failing": now - 9 * 86400})
    s.save(s.load(), {"new": now}, expire_before=now - 7 * 86400, keep={"present-but-failing"})
    assert set(store(kube).load().ends) == {"gone-yesterday", "present-but-failing", "new"}


def test_concurrent_writers_merge_latest_per_load_balancer(kube):
    """Two stores save different LBs from the same stale base at once: nothing is lost."""
    base_store = store(kube)
    base_store.save(base_store.load(), {"a": 60, "b": 60})
    stores = [store(kube) for _ in range(4)]
    bases = [st.load() for st in stores]
    errors = []

    def save(i):
        try:
            stores[i].save(bases[i], {"a": 120 + 60 * i, f"only-{i}": 60})
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    ends = store(kube).load().ends
    assert ends == {"a": 120 + 60 * 3, "b": 60, **{f"only-{i}": 60 for i in range(4)}}


def test_nine_shards_storing_at_once_all_store(kube):
    """The worst case of 9 writers from stale bases: 9 conflicts in a row, then it stores."""
    s = store(kube)
    s.save(s.load(), {"other-shard": 60})
    stale = s.load()
    s.save(stale, {"other-shard": 120})
    kube.inject("PUT", "/configmaps/", 409, times=8)
    assert s.save(stale, {"mine": 60}).ends == {"other-shard": 120, "mine": 60}
    assert store(kube).load().ends == {"other-shard": 120, "mine": 60}


def test_overlapping_runs_corrupt_nothing_and_change_no_sample(aws, kube, prometheus):
    """A manual run while the CronJob runs: two real lbscrape processes at once."""
    scene = Scene(aws, kube, prometheus)
    scene.run(scene.clock - 300)
    cmd = [sys.executable, "-m", "lbscrape", "run", "--cluster", "test-cluster",
           "--region", "us-east-1", "--kubeconfig", kube.kubeconfig_path,
           "--remote-write-url", prometheus.write_url, "--now", str(scene.clock)]
    procs = [subprocess.Popen(cmd, env=dict(os.environ), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    end = end_for(scene.clock)
    assert scene.stored("alb_request_count_sum")[scene.alb.name] == scene.expected(
        scene.requests, end_for(scene.clock - 300) - 600, end)
    assert scene.stored("nlb_new_flow_count_sum")[scene.nlb.name] == scene.expected(
        scene.flows, end_for(scene.clock - 300) - 600, end)
    cp = scene.checkpoint()
    assert cp == {scene.alb.dimension: _iso(end), scene.nlb.dimension: _iso(end)}


def test_a_run_forgets_load_balancers_gone_longer_than_the_retention(aws, kube, prometheus):
    scene = Scene(aws, kube, prometheus)
    kube.put("v1", "configmaps", {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "lbscrape-checkpoint", "namespace": "monitoring"},
        "data": {"checkpoint.json": json.dumps({"format": 1, "load_balancers": {
            "app/deleted-last-month/1": _iso(scene.clock - 30 * 86400),
            "app/deleted-yesterday/2": _iso(scene.clock - 86400)}})}})
    scene.run(scene.clock, "--checkpoint-retention", "7d")
    assert set(scene.checkpoint()) == {"app/deleted-yesterday/2", scene.alb.dimension,
                                       scene.nlb.dimension}


def _iso(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
