"""`lbscrape checkpoint show|reset` against the fake API server and a real Prometheus."""

from __future__ import annotations

import json

from click.testing import CliRunner

from lbscrape.cli import cli
from tests.test_run import Scene, _iso, end_for, summary


def invoke(scene, *args, expect=0):
    result = CliRunner().invoke(cli, ["checkpoint", *args, "--kubeconfig",
                                      scene.kube.kubeconfig_path])
    assert result.exit_code == expect, result.output + result.stderr
    return result


def test_show_lists_every_load_balancer_with_its_lag(aws, kube, prometheus):
    scene = Scene(aws, kube, prometheus)
    assert "no checkpoints in monitoring/lbscrape-checkpoint" in invoke(scene, "show").output
    scene.run(scene.clock)
    table = invoke(scene, "show").output.splitlines()
    assert table[0].split() == ["LOAD", "BALANCER", "DIMENSION", "CHECKPOINT", "LAG"]
    assert any(scene.alb.name in line and _iso(end_for(scene.clock)) in line for line in table)
    rows = json.loads(invoke(scene, "show", "-o", "json").output)
    assert {r["load_balancer_name"] for r in rows} == {scene.alb.name, scene.nlb.name}
    assert all(r["lag_seconds"] >= 120 for r in rows)


def test_reset_one_load_balancer_back_then_run_changes_no_stored_value(aws, kube, prometheus):
    scene = Scene(aws, kube, prometheus)
    scene.run(scene.clock)
    before = scene.stored("alb_request_count_sum")
    out = invoke(scene, "reset", "--load-balancer", scene.alb.name, "--to", "-6m").output
    assert out.startswith("1 checkpoints moved to ")
    cp = scene.checkpoint()
    assert cp[scene.nlb.dimension] == _iso(end_for(scene.clock))
    assert cp[scene.alb.dimension] < _iso(end_for(scene.clock))
    result = scene.run(scene.clock)
    assert scene.stored("alb_request_count_sum") == before
    assert "samples_rejected=0" not in summary(result)
    assert scene.checkpoint()[scene.alb.dimension] == _iso(end_for(scene.clock))


def test_reset_all_forgets_and_bad_input_is_one_line(aws, kube, prometheus):
    scene = Scene(aws, kube, prometheus)
    scene.run(scene.clock)
    assert invoke(scene, "reset").output.startswith("2 checkpoints forgotten")
    assert scene.checkpoint() == {}
    r = invoke(scene, "reset", "--load-balancer", "nope", expect=2)
    assert r.stderr.strip() == ("lbscrape: error: --load-balancer: no checkpoint for nope "
                                "(see 'lbscrape checkpoint show')")
    r = invoke(scene, "reset", "--to", "yesterday", expect=2)
    assert r.stderr.count("\n") == 1 and "--to" in r.stderr
