"""The mixin's rule files through Debian's promtool: `check rules` on every file each
configuration writes, and `test rules` with the unit tests shipped in tests/mixin/, which
make every alert fire on lbscrape-shaped series and stay quiet on healthy ones (and, in
tests/mixin/slow/, those of a mixin for a CronJob with a 5-minute period and schedule)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml  # type: ignore[import-untyped,unused-ignore]

from lbscrape.core.catalog import DEFAULT
from lbscrape.core.metrics_config import tailor
from lbscrape.mixin import build
from lbscrape.mixin.config import from_doc, parse_owner
from lbscrape.mixin.config import load as load_config
from lbscrape.mixin.render import files, kubernetes

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
UNIT_TESTS = Path(__file__).parent / "mixin"
SLOW = UNIT_TESTS / "slow"


def write(out: Path, rendered: dict[str, str]) -> list[Path]:
    paths = []
    for rel, text in rendered.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        paths.append(path)
    return paths


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, *map(str, args)], capture_output=True, text=True,
                          timeout=60)


CONFIG = from_doc({
    "selector": 'cluster=~"prod-.*"', "labels": {"team": "sre"}, "group_by": ["team"],
    "alerts": {"AlbElb5xxRatioHigh": {"threshold": 0.02, "for": "10m", "range": "15m",
                                      "labels": {"page": "true"}},
               "ClassicElbSpillover": {"enabled": False}}}, "mixin.yaml")
TAILORED = tailor({"application": {"drop": [{"metric": "TargetResponseTime"}],
                                   "add": [{"metric": "TargetResponseTime", "stats": ["p99"]}]},
                   "network": {"drop": [{"metric": "HealthyHostCount"}]}}, "m.yaml")
VARIANTS = {
    "default": build(DEFAULT),
    "config": build(DEFAULT, CONFIG),
    "tailored": build(TAILORED),
    "ingress": build(DEFAULT, CONFIG, parse_owner("shop/ingress/web")),
    "group": build(DEFAULT, owner=parse_owner("ingress-group/shared")),
    "service": build(DEFAULT, owner=parse_owner("shop/service/db")),
    "slow": build(DEFAULT, load_config(str(SLOW / "mixin.yaml"))),
}


def test_every_rule_file_passes_promtool_check_rules(tmp_path):
    checked = []
    for variant, bundle in VARIANTS.items():
        out = tmp_path / variant
        checked += [p for p in write(out, files(bundle)) if p.suffix == ".yaml"]
        # The PrometheusRule's spec holds the same groups: prometheus-operator's admission
        # webhook checks them with the Prometheus rule parser promtool uses.
        (rule,) = [yaml.safe_load(t) for p, t in kubernetes(bundle).items()
                   if p.startswith("prometheusrule")]
        spec = out / "prometheusrule-spec.yaml"
        spec.write_text(yaml.safe_dump(rule["spec"]))
        checked.append(spec)
    result = promtool("check", "rules", *checked)  # one process: promtool starts slowly
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(checked) == 4 * 3 + 3 * 2


def test_shipped_unit_tests_pass_and_make_every_alert_fire(tmp_path):
    write(tmp_path, files(build(DEFAULT)))
    write(tmp_path / "slow", files(VARIANTS["slow"]))
    tests = sorted(UNIT_TESTS.glob("*.test.yaml"))
    for t in (*tests, *SLOW.glob("*.test.yaml")):
        shutil.copy(t, tmp_path / t.relative_to(UNIT_TESTS))
    ran = [p for p in tmp_path.rglob("*.test.yaml")]
    result = promtool("test", "rules", *ran)  # one process: promtool starts slowly
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(ran) == len(tests) + 1

    fired, quiet = set(), set()
    for t in tests:
        for case in yaml.safe_load(t.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check["exp_alerts"] else quiet).add(check["alertname"])
    alerts = {r["alert"] for r in build(DEFAULT).alerts}
    # Each alert fires in a shipped test, and since promtool compares the whole list of
    # firing alerts, the healthy owners beside the broken ones are checked to stay quiet;
    # some checks expect nothing at all (before the burst, after the data stopped).
    assert fired == alerts
    assert quiet == {"AlbElb5xxRatioHigh", "AlbNoHealthyTargets", "NlbLoadBalancerResetsHigh",
                     "NlbTargetResetsHigh", "ClassicElb5xxRatioHigh",
                     "ClassicElbBackend5xxRatioHigh", "ClassicElbLatencyHigh", "LbscrapeRunFailing",
                     "LbscrapeNotRunning", "LbscrapeSamplesRejected"}
    recorded = {r["record"] for r in build(DEFAULT).records}
    tested = {c["expr"].split("{")[0] for c in yaml.safe_load(
        (UNIT_TESTS / "rules.test.yaml").read_text())["tests"][0]["promql_expr_test"]}
    # Each recorded series by name, beside the formula before for comparison.
    assert len(tested & recorded) >= 9 and tested - recorded == {
        "sum by (ingress) (avg_over_time(alb_request_count_sum"}


def test_a_config_changes_thresholds_labels_and_grouping(tmp_path):
    bundle = VARIANTS["config"]
    rule = next(r for r in bundle.alerts if r["alert"] == "AlbElb5xxRatioHigh")
    assert rule["for"] == "10m" and rule["labels"] == {"severity": "critical", "team": "sre",
                                                       "page": "true"}
    assert ") > 0.02\n" in rule["expr"] and "[15m] offset 4m1ms" in rule["expr"]
    assert "load_balancer_name, team)" in rule["expr"]
    assert 'cluster=~"prod-.*"' in rule["expr"]
    assert "ClassicElbSpillover: disabled in --config" in bundle.notes
    assert "ClassicElbSpillover" not in {r["alert"] for r in bundle.alerts}
