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
