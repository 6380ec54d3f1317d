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


def test_checkpoint_file_instead_of_a_configmap(aws, kube, prometheus, tmp_path):
    scene = Scene(aws, kube, prometheus)
    path = tmp_path / "checkpoints.json"
    scene.run(scene.clock - 300, "--checkpoint-file", str(path))
    scene.run(scene.clock, "--checkpoint-file", str(path))
    assert scene.checkpoint() is None  # no ConfigMap was made
    assert not [s for s in kube.seen if s.resource == "configmaps"]
    stored = json.loads(path.read_text())["load_balancers"]
    assert stored == {scene.alb.dimension: _iso(end_for(scene.clock)),
                      scene.nlb.dimension: _iso(end_for(scene.clock))}
    assert scene.stored("alb_request_count_sum")[scene.alb.name] == scene.expected(
        scene.requests, end_for(scene.clock - 300) - 600, end_for(scene.clock))
    rows = json.loads(invoke(scene, "show", "--checkpoint-file", str(path), "-o", "json").output)
    assert len(rows) == 2
    invoke(scene, "reset", "--checkpoint-file", str(path))
    assert json.loads(path.read_text())["load_balancers"] == {}
    r = scene.run(scene.clock, "--checkpoint-file", str(path), "--checkpoint-configmap",
                  "monitoring/x", expect=2)
    assert "--checkpoint-file" in r.stderr


def test_unparseable_checkpoint_file_names_the_file(aws, kube, prometheus, tmp_path):
    scene = Scene(aws, kube, prometheus)
    path = tmp_path / "checkpoints.json"
    path.write_text("{broken")
    result = scene.run(scene.clock, "--checkpoint-file", str(path), expect=1)
    assert f"checkpoint file {path}" in summary(result) and "delete the file" in summary(result)
    assert scene.prom.raw("alb_request_count_sum") == {}
