"""`lbscrape backfill`: fill a past range once, from a laptop, resumably.

Planning is pure (`plan`): which range CloudWatch still holds at the chosen period, and
the GetMetricData calls that request every (load balancer, metric, statistic) once. The
loop (`loop`) then takes one call at a time (fetch, write through a `sinks` Sink, record
it in the `state` file), so memory is bounded by one call (at most 100,800 datapoints)
however long the range is, and an interrupted backfill carries on at the first
unfinished request. It never reads or moves the CronJob's checkpoint. `command` is what
the command does around them.
"""

from lbscrape.flows.backfill.loop import Outcome, run
from lbscrape.flows.backfill.plan import (
    Plan,
    Target,
    check_still_kept,
    describe,
    kept_for,
    make_plan,
    parse_when,
    plan_range,
    targets_of,
)
from lbscrape.flows.backfill.sinks import (
    OpenMetricsSink,
    RemoteWriteSink,
    Sink,
    requests,
    skip_samples,
)
from lbscrape.flows.backfill.state import BackfillStopped, State, StateFile, carry_checkpoint

__all__ = [
    "BackfillStopped", "OpenMetricsSink", "Outcome", "Plan", "RemoteWriteSink", "Sink",
    "State", "StateFile", "Target", "carry_checkpoint", "check_still_kept", "describe",
    "kept_for", "make_plan", "parse_when", "plan_range", "requests", "run", "skip_samples",
    "targets_of",
]
