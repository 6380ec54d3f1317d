"""The README's first command must keep working: run the demo end to end."""

from __future__ import annotations

import re
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
    # lbscrape's own series, read back from Prometheus, and the README's queries on them.
    own = dict(re.findall(r"^  (lbscrape_\S+)\s+(\S+)$", out, re.M))
    assert own["lbscrape_run_success"] == "1" and own["lbscrape_run_exit_code"] == "0"
    assert own['lbscrape_run_load_balancers{state="written"}'] == "3"
    assert len([k for k in own if k.startswith("lbscrape_load_balancer_lag_seconds{")]) == 3
    assert "month's bill so far at list price, $: 0.00037" in out
