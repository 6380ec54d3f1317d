"""settled_end / plan_window: the settle rule and gap-free, overlap-free windows."""

from __future__ import annotations

import random

import pytest

from lbscrape.core.config import WindowSettings
from lbscrape.core.model import Window
from lbscrape.core.window import plan_window, settled_end

# 2026-11-23T00:00:00Z, a multiple of 3600.
T0 = 1_795_392_000
W = WindowSettings(settle_delay=120, period=60, initial_lookback=600, max_catchup=3600)


def settled_timestamps(now: int, w: WindowSettings, lo: int, hi: int) -> list[int]:
    """Every period start t in [lo, hi) that the settle rule allows: t + period <= now - settle."""
    return [t for t in range(lo, hi, w.period) if t + w.period <= now - w.settle_delay]


def in_window(t: int, win: Window) -> bool:
    return win.start <= t < win.end and (t - win.start) % win.period == 0


@pytest.mark.parametrize("offset", [0, 1, 59, 60, 119, 120, 121, 179, 180, 3599])
@pytest.mark.parametrize("w", [
    W,
    WindowSettings(settle_delay=90, period=60, initial_lookback=600, max_catchup=3600),
    WindowSettings(settle_delay=300, period=300, initial_lookback=3600, max_catchup=7200),
])
def test_settle_rule_includes_exactly_the_settled_datapoints(offset, w):
    now = T0 + offset
    end = settled_end(now, w)
    assert end % w.period == 0
    assert end <= now - w.settle_delay
    # A datapoint t (t on a period boundary) is inside [.., end) iff t + period <= now - settle.
    lo = T0 - 10 * w.period
    inside = [t for t in range(lo, T0 + 2 * w.period, w.period) if t < end]
    assert inside == settled_timestamps(now, w, lo, T0 + 2 * w.period)


def test_settle_boundary_exact():
    # now - settle exactly on a boundary: the period ending there is settled.
    now = T0 + 120
    assert settled_end(now, W) == T0
    # One second earlier it is not.
    assert settled_end(now - 1, W) == T0 - 60


def test_first_run_uses_initial_lookback():
    now = T0 + 125
    plan = plan_window(now, None, W)
    assert plan.window == Window(T0 - 600, T0, 60)
    assert plan.window.periods == 10
    assert plan.skipped is None
    assert plan.realigned_from is None


def test_first_run_lookback_not_a_multiple_of_period_rounds_down():
    w = WindowSettings(settle_delay=120, period=300, initial_lookback=1000, max_catchup=3600)
    plan = plan_window(T0 + 500, None, w)
    end = settled_end(T0 + 500, w)
    assert plan.window == Window(end - 900, end, 300)


def test_checkpoint_continues_where_the_last_window_ended():
    plan = plan_window(T0 + 1000, T0, W)
    assert plan.window.start == T0
    assert plan.window.end == settled_end(T0 + 1000, W)
    assert plan.skipped is None and plan.realigned_from is None


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("w", [
    W,
    WindowSettings(settle_delay=150, period=300, initial_lookback=900, max_catchup=86400),
])
def test_consecutive_runs_leave_no_gap_and_no_overlap(seed, w):
    rng = random.Random(seed)
    now = T0 + rng.randrange(0, 3600)
    checkpoint = None
    windows = []
    first_start = None
    for _ in range(30):
        plan = plan_window(now, checkpoint, w)
        assert plan.skipped is None
        assert plan.realigned_from is None
        win = plan.window
        if first_start is None:
            first_start = win.start
        assert win.start % w.period == 0 and win.end % w.period == 0
        assert win.end == settled_end(now, w)
        if checkpoint is not None:
            assert win.start == checkpoint
        windows.append(win)
        checkpoint = win.end
        # Irregular schedule: sometimes twice in the same period, sometimes late.
        now += rng.choice([0, 1, 7, 30, 59, 60, 61, 119, 300, 311, 901])

    # The union of the windows is exactly one contiguous range, each period once.
    covered = [t for win in windows for t in range(win.start, win.end, w.period)]
    assert len(covered) == len(set(covered)), "overlap"
    assert covered == list(range(first_start, windows[-1].end, w.period)), "gap"
    assert sum(win.periods for win in windows) == len(covered)


def test_every_settled_datapoint_is_written_exactly_once_over_many_runs():
    rng = random.Random(42)
    now = T0 + 17
    checkpoint = None
    written: list[int] = []
    start0 = None
    for _ in range(30):
        plan = plan_window(now, checkpoint, W)
        if start0 is None:
            start0 = plan.window.start
        # Datapoints CloudWatch has, one per minute from well before the first window.
        for t in range(T0 - 7200, now, 60):
            if in_window(t, plan.window):
                assert t + W.period <= now - W.settle_delay, "unsettled datapoint written"
                written.append(t)
        checkpoint = plan.window.end
        now += rng.randrange(0, 400)
    assert written == sorted(set(written))
    assert written == list(range(start0, checkpoint, 60))


def test_now_going_backwards_gives_an_empty_window_and_keeps_the_checkpoint():
    plan = plan_window(T0 + 600, None, W)
    later = plan_window(T0 + 300, plan.window.end, W)
    assert later.window.empty
    assert later.window.periods == 0
    assert later.window.start == plan.window.end


def test_checkpoint_newer_than_end_gives_an_empty_window():
    now = T0 + 200
    end = settled_end(now, W)
    plan = plan_window(now, end + 600, W)
    assert plan.window.empty
    assert plan.window.periods == 0
    # The window starts at the checkpoint, so writing its end back never moves it back.
    assert plan.window.start == plan.window.end == end + 600
    assert plan.skipped is None


def test_checkpoint_equal_to_end_gives_an_empty_window():
    now = T0 + 200
    end = settled_end(now, W)
    plan = plan_window(now, end, W)
    assert plan.window == Window(end, end, 60)
    assert plan.window.empty


def test_max_catchup_clamps_and_reports_skipped_range():
    now = T0 + 120
    end = settled_end(now, W)
    old = end - 3 * 3600
    plan = plan_window(now, old, W)
    assert plan.window == Window(end - 3600, end, 60)
    assert plan.skipped == Window(old, end - 3600, 60)
    # skipped + window together cover exactly checkpoint..end.
    assert plan.skipped.end == plan.window.start
    assert plan.skipped.start == old


def test_checkpoint_exactly_at_max_catchup_is_not_skipped():
    now = T0 + 120
    end = settled_end(now, W)
    plan = plan_window(now, end - 3600, W)
    assert plan.skipped is None
    assert plan.window == Window(end - 3600, end, 60)


def test_unaligned_checkpoint_is_rounded_up_with_realigned_from():
    # The period changed from 60 to 300: a checkpoint at :01:00 is not on a 5-minute boundary.
    w = WindowSettings(settle_delay=120, period=300, initial_lookback=900, max_catchup=86400)
    now = T0 + 3600
    cp = T0 + 60
    plan = plan_window(now, cp, w)
    assert plan.realigned_from == cp
    assert plan.window.start == T0 + 300
    assert plan.window.start % 300 == 0
    assert plan.window.start - cp < w.period  # the gap is shorter than one period
    assert plan.window.end == settled_end(now, w)
    assert plan.skipped is None


def test_aligned_checkpoint_is_not_reported_realigned():
    w = WindowSettings(settle_delay=120, period=300, initial_lookback=900, max_catchup=86400)
    plan = plan_window(T0 + 3600, T0 + 600, w)
    assert plan.realigned_from is None
    assert plan.window.start == T0 + 600


def test_unaligned_old_checkpoint_is_realigned_and_then_clamped():
    now = T0 + 120
    end = settled_end(now, W)
    cp = end - 5 * 3600 + 17
    plan = plan_window(now, cp, W)
    assert plan.realigned_from == cp
    assert plan.skipped == Window(cp + 43, end - 3600, 60)
    assert plan.window == Window(end - 3600, end, 60)
