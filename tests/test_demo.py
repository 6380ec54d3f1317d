"""The README's first command must keep working: run the demo end to end."""

from __future__ import annotations

import subprocess
import sys


def test_demo_runs_a_complete_cycle_and_shows_what_landed():
    proc = subprocess.run([sys.executable, "-m", "tests.demo"], capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "What landed in Prometheus" in out
    for name in ("alb_request_count_sum", "nlb_new_flow_count_sum", "k8s-shop-storefro-5c1d8e2a40",
                 "payments/service/ledger"):
        assert name in out
    assert "lbs_written=3" in proc.stderr and "lbs_failed=0" in proc.stderr


def test_the_demo_names_every_kind_of_owner():
    from tests.demo import owner

    assert owner({"namespace": "shop", "ingress": "web"}) == "shop/web"
    assert owner({"ingress_group": "shared"}) == "IngressGroup shared"  # no namespace
    assert owner({"namespace": "pay", "service": "ledger"}) == "pay/ledger"
