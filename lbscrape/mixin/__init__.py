"""The lbscrape mixin: Grafana dashboards, Prometheus alerts and recording rules generated
from lbscrape's own metric catalog (issue 14), in the monitoring-mixins shape (a bundle of
dashboards, alerts and rules with a config block of thresholds and selectors).

Pure functions from (catalog, MixinConfig, owner) to plain data: dicts ready for JSON and
YAML. Nothing here contacts a cluster or AWS, or imports boto3, kubernetes or protobuf, so
`lbscrape mixin` runs in CI before the load balancer it is about exists.

The one rule every query here follows: lbscrape's alb_*/nlb_*/elb_* series are CloudWatch
statistics per period (a Sum sample is the count *in that minute*), not Prometheus
counters. rate()/irate()/increase() would read each minute's count as a cumulative total
and report nonsense, so a per-second rate is `sum_over_time(x[R]) / R-seconds` over a
complete range (CloudWatch writes nothing for an idle minute, so a mean of the samples
would count only busy ones), a ratio divides two sums over the same range, and because the
newest minutes are not written yet (settings.Timing.lag: settle delay, period, schedule),
sums end that far back and every range is derived from the CronJob's timing.
"""

from lbscrape.mixin.bundle import Bundle, build

__all__ = ["Bundle", "build"]
