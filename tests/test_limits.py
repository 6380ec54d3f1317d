"""The GetMetricData rate limiter (pure, on an injected clock) and its options."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from lbscrape.aws.limits import MIN_SCALE, SECOND, THROTTLE_PAUSE, RateLimiter
from lbscrape.cli import cli
from lbscrape.core.config import (
    GMD_DPS_QUOTA_OLD,
    GMD_DPS_QUOTA_RECENT,
    CloudWatchLimits,
    parse_cloudwatch_limits,
)
from lbscrape.core.errors import ConfigError

NOW = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def limiter(limits: CloudWatchLimits) -> tuple[RateLimiter, Clock]:
    clock = Clock()
    return RateLimiter(limits, clock=clock, wall=lambda: NOW), clock


def starts(lim: RateLimiter, clock: Clock, calls: list[tuple[int, int]]) -> list[float]:
    """When each call (datapoints, StartTime) may start, booked all at once."""
    return [round(clock.t + lim.reserve(dp, st) - 1000.0, 6) for dp, st in calls]


def test_calls_are_spaced_by_the_calls_per_second_limit():
    lim, clock = limiter(CloudWatchLimits(max_tps=5, dps=10**9))
    assert starts(lim, clock, [(1, int(NOW))] * 6) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]


def test_datapoints_per_second_use_the_quota_of_the_calls_start_time():
    recent, old = int(NOW) - 600, int(NOW) - 4 * 3600
    # Half of 180,000/s takes one 60,000-datapoint call a second, half of 396,000 three
    # (a second with a margin: SECOND).
    lim, clock = limiter(CloudWatchLimits(max_tps=1000, dps_share=0.5))
    assert starts(lim, clock, [(60_000, recent)] * 4) == [0.0, 1.1, 2.2, 3.3]
    lim, clock = limiter(CloudWatchLimits(max_tps=1000, dps_share=0.5))
    assert starts(lim, clock, [(60_000, old)] * 4) == [0.0, 0.001, 0.002, 1.1]
    assert SECOND == 1.1
    assert CloudWatchLimits(dps=500_000).max_dps(True) == GMD_DPS_QUOTA_RECENT
    assert CloudWatchLimits(dps=500_000).max_dps(False) == GMD_DPS_QUOTA_OLD


def test_over_any_second_the_rates_hold():
    # Calls of every size, as a backfill's and a run's: in no second (CloudWatch counts
    # a call whole when it arrives) more calls or datapoints than allowed.
    lim, clock = limiter(CloudWatchLimits(max_tps=20, dps=50_000))
    sizes = [(3_000 + 7_919 * i) % 48_000 for i in range(300)]
    at = starts(lim, clock, [(d, int(NOW)) for d in sizes])
    assert at == sorted(at)
    for t in at:
        inside = [d for d, u in zip(sizes, at, strict=True) if t <= u < t + 1]
        assert len(inside) <= 20
        assert sum(inside) <= 50_000


def test_a_call_larger_than_the_rate_goes_alone():
    lim, clock = limiter(CloudWatchLimits(max_tps=1000, dps=50_000))
    assert starts(lim, clock, [(80_000, int(NOW)), (10, int(NOW)), (80_000, int(NOW))]) \
        == [0.0, 1.1, 2.2]


def test_a_throttle_pauses_every_worker_and_halves_the_rates():
    lim, clock = limiter(CloudWatchLimits(max_tps=10, dps=10**9))
    assert starts(lim, clock, [(1, int(NOW))] * 2) == [0.0, 0.1]
    clock.t += 0.15
    lim.throttled()
    # Nobody starts within the pause; then calls come at half the rate.
    got = starts(lim, clock, [(1, int(NOW))] * 3)
    assert got[0] == pytest.approx(0.15 + THROTTLE_PAUSE)
    assert got[1] - got[0] == pytest.approx(0.2)
    assert lim.scale == 0.5 and lim.throttles == 1


def test_rates_come_back_after_successes_and_never_drop_to_nothing():
    lim, _ = limiter(CloudWatchLimits())
    for _ in range(20):
        lim.throttled()
    assert lim.scale == MIN_SCALE
    for _ in range(100):
        lim.succeeded()
    assert lim.scale == 1.0


@pytest.mark.parametrize("text, share, dps", [("50%", 0.5, None), ("100%", 1.0, None),
                                              (" 12.5% ", 0.125, None), ("90000", 0.5, 90000)])
def test_max_dps_is_a_share_or_a_number(text, share, dps):
    limits = parse_cloudwatch_limits(10, 25, text)
    assert (limits.dps_share, limits.dps) == (share, dps)


@pytest.mark.parametrize("args, message", [
    (["--cloudwatch-max-dps", "0%"], "--cloudwatch-max-dps: cannot read '0%'"),
    (["--cloudwatch-max-dps", "150%"], "--cloudwatch-max-dps: cannot read '150%'"),
    (["--cloudwatch-max-dps", "fast"], "e.g. 50%, or a number"),
    (["--cloudwatch-max-dps", "1.5"], "--cloudwatch-max-dps"),
    (["--cloudwatch-max-tps", "0"], "--cloudwatch-max-tps"),
    (["--cloudwatch-concurrency", "0"], "--cloudwatch-concurrency"),
])
def test_bad_limits_are_usage_errors_before_anything_is_contacted(args, message):
    result = CliRunner().invoke(cli, ["run", "--cluster", "c", "--dry-run", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output + result.stderr


def test_the_env_vars_set_the_limits(monkeypatch):
    monkeypatch.setenv("LBSCRAPE_CLOUDWATCH_MAX_DPS", "nonsense")
    result = CliRunner().invoke(cli, ["run", "--cluster", "c", "--dry-run"])
    assert result.exit_code == 2
    assert "--cloudwatch-max-dps: cannot read 'nonsense'" in result.stderr


def test_parse_refuses_with_the_option_named():
    with pytest.raises(ConfigError, match="--cloudwatch-concurrency"):
        parse_cloudwatch_limits(65, 25, "50%")


def test_a_worker_waiting_when_a_throttle_comes_in_waits_behind_the_pause():
    lim, clock = limiter(CloudWatchLimits(max_tps=10, dps=10**9))
    slept = []

    def sleep(seconds):
        slept.append(round(seconds, 6))
        if len(slept) == 1:
            lim.throttled()  # another worker's call was refused meanwhile
        clock.t += seconds
        return True

    assert lim.acquire(1, int(NOW), sleep)
    assert slept == [0.0, THROTTLE_PAUSE]


def test_a_worker_gives_up_when_fetching_stops():
    lim, _ = limiter(CloudWatchLimits())
    assert lim.acquire(1, int(NOW), lambda s: False) is False
