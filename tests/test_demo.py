"""The README's first command must keep working: run the demo end to end, and leave
nothing behind in the temp directory, also when it fails."""

from __future__ import annotations

import os
import re
import subprocess
import sys


def _demo(tmp_path, **env):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = subprocess.run([sys.executable, "-m", "tests.demo"], capture_output=True, text=True,
                          timeout=180, env={**os.environ, "TMPDIR": str(tmp), **env})
    return proc, sorted(os.listdir(tmp))


def test_demo_runs_a_complete_cycle_and_shows_what_landed(tmp_path):
    proc, left = _demo(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "What landed in Prometheus" in out
    for name in ("alb_request_count_sum", "nlb_new_flow_count_sum", "k8s-shop-storefro-5c1d8e2a40",
                 "payments/service/ledger"):
        assert name in out
    assert "lbs_written=3" in proc.stderr and "lbs_failed=0" in proc.stderr
    # lbscrape's own series, read back from Prometheus, and the README's queries on them.
    own = dict(re.findall(r"^  (lbscrape_\S+)\s+(\S+)$", out, re.M))
    assert own["lbscrape_run_success"] == "1" and own["lbscrape_run_exit_code"] == "0"
    assert own['lbscrape_run_load_balancers{state="written"}'] == "3"
    assert len([k for k in own if k.startswith("lbscrape_load_balancer_lag_seconds{")]) == 3
    assert "month's bill so far at list price, $: 0.00037" in out
    assert left == []


def test_a_failing_demo_leaves_nothing_behind(tmp_path):
    proc, left = _demo(tmp_path, LBSCRAPE_DEADLINE="soon")  # lbscrape refuses it: exit 2
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "--deadline" in proc.stderr
    assert left == []


def test_the_demo_names_every_kind_of_owner():
    from tests.demo import owner

    assert owner({"namespace": "shop", "ingress": "web"}) == "shop/web"
    assert owner({"ingress_group": "shared"}) == "IngressGroup shared"  # no namespace
    assert owner({"namespace": "pay", "service": "ledger"}) == "pay/ledger"
