"""Option text into validated configs, without click: what each command checks before it
contacts anything."""

import pytest

from lbscrape.core.errors import ConfigError
from lbscrape.core.options import (
    BackfillOptions,
    CheckpointOptions,
    RunOptions,
    SelectionOptions,
    backfill_settings,
    run_settings,
)

URL = "http://127.0.0.1:9/api/v1/write"


def _never() -> str:
    raise AssertionError("bad input must fail before the AWS or Kubernetes config is read")


def test_run_settings_build_the_run_config():
    asked = []

    def region():
        asked.append("region")
        return "eu-west-1"

    def namespace():
        asked.append("namespace")
        return "monitoring"

    s = run_settings(RunOptions(cluster=" prod ", remote_write_url=URL, labels=("env=prod",),
                                selection=SelectionOptions(("shop",)), deadline="40s",
                                now="1795392000"), region, namespace)
    cfg = s.config
    assert (cfg.cluster, cfg.region, str(cfg.checkpoint)) == \
        ("prod", "eu-west-1", "monitoring/lbscrape-checkpoint")
    assert cfg.static_labels == (("env", "prod"),) and cfg.namespaces == ("shop",)
    assert (s.deadline, s.now, cfg.window.settle_delay) == (40, 1795392000, 120)
    assert sorted(asked) == ["namespace", "region"]


@pytest.mark.parametrize(("options", "option"), [
    (RunOptions(cluster="c", remote_write_url=URL, settle_delay="soon"), "--settle-delay"),
    (RunOptions(cluster="c", remote_write_url=URL, checkpoint_retention="10m"),
     "--checkpoint-retention"),
    (RunOptions(cluster="c", remote_write_url=URL, deadline="0s"), "--deadline"),
    (RunOptions(cluster=" ", remote_write_url=URL), "--cluster"),
    (RunOptions(cluster="c"), "--remote-write-url"),
    (RunOptions(cluster="c", remote_write_url=URL, labels=("cluster=x",)), "--label"),
    (RunOptions(cluster="c", remote_write_url=URL,
                checkpoint=CheckpointOptions("ns/cm", "f.json")), "--checkpoint-file"),
    (RunOptions(cluster="c", remote_write_url=URL,
                checkpoint=CheckpointOptions("not a ref")), "--checkpoint-configmap"),
])
def test_run_settings_name_the_bad_option_before_reading_any_config(options, option):
    with pytest.raises(ConfigError) as e:
        run_settings(options, _never, _never)
    assert str(e.value).startswith(f"{option}:")


def test_a_dry_run_needs_no_endpoint():
    s = run_settings(RunOptions(cluster="c", dry_run=True), lambda: "r", lambda: "ns")
    assert s.config.remote_write is None and s.config.dry_run


def test_backfill_settings_need_exactly_one_destination():
    with pytest.raises(ConfigError, match="^--output:"):
        backfill_settings(BackfillOptions(start="-1h", cluster="c"))
    with pytest.raises(ConfigError, match="^--output:"):
        backfill_settings(BackfillOptions(start="-1h", cluster="c", output="a.om",
                                          remote_write_url=URL))
    b = backfill_settings(BackfillOptions(start="-1h", cluster="c",
                                          remote_write_url="http://u:secret@127.0.0.1:9/w"))
    assert b.destination == "remote-write http://***@127.0.0.1:9/w"
    assert backfill_settings(BackfillOptions(start="-1h", cluster="c", output="a.om",
                                             period="5m")).period == 300


def test_backfill_settings_check_the_period():
    with pytest.raises(ConfigError, match="^--period:"):
        backfill_settings(BackfillOptions(start="-1h", cluster="c", output="a.om", period="90s"))


def test_smoke_settings():
    from lbscrape.core.options import SmokeOptions, smoke_settings

    with pytest.raises(ConfigError, match="^--cluster:"):
        smoke_settings(SmokeOptions(remote_write_url=URL))
    with pytest.raises(ConfigError, match="^--remote-write-url:"):
        smoke_settings(SmokeOptions(cluster="c"))
    with pytest.raises(ConfigError, match="^--label:"):
        smoke_settings(SmokeOptions(no_write=True, labels=("bad",)))
    s = smoke_settings(SmokeOptions(cluster=" c ", remote_write_url=URL, labels=("a=b",)))
    assert (s.cluster, s.static_labels, s.remote_write.url) == ("c", (("a", "b"),), URL)
    assert smoke_settings(SmokeOptions(no_write=True)).remote_write is None


def test_estimate_settings():
    from lbscrape.core.options import EstimateOptions, estimate_settings

    with pytest.raises(ConfigError, match="^--period:"):
        estimate_settings(EstimateOptions(period="90s"))
    with pytest.raises(ConfigError, match="^--interval:"):
        estimate_settings(EstimateOptions(interval="0s"))
    e = estimate_settings(EstimateOptions(interval="5m", selection=SelectionOptions((), ("kube",))))
    assert (e.period, e.interval, e.exclude_namespaces) == (60, 300, ("kube",))


def test_parse_to():
    from lbscrape.core.options import parse_to

    assert parse_to(None, 1000) is None
    assert parse_to("-30m", 1795392000 + 59) == 1795392000 - 1800
    assert parse_to("2026-11-23T00:00:30Z", 0) == 1795392000
    with pytest.raises(ConfigError, match="^--to:"):
        parse_to("yesterday", 0)
