"""The lbscrape health dashboard, from the self-telemetry series of issue 13: is it running,
does it succeed, how long a run takes, how fresh each load balancer's data is, what was
written, refused and zero-filled, and what CloudWatch bills for it.

Those series are gauges with one sample per run, stamped with the run's end: a per-run
count over a range is a sum_over_time, and "is it running" can only be answered by
absence, since a run that cannot reach the endpoint writes nothing at all.
"""

from __future__ import annotations

from lbscrape.mixin import queries as q
from lbscrape.mixin.dashboards import INTERVAL, Dashboard, Panel, Row, Target, document, uid
from lbscrape.mixin.queries import by, selector, window
from lbscrape.mixin.settings import Matcher, MixinConfig

PER_MINUTE = "($__interval_ms / 60000)"
CLUSTER = ("cluster", "region")
ABSENCE_TEXT = ("No data means no run reached Prometheus: a run that cannot reach the "
                "remote-write endpoint writes nothing, so absence is the signal.")


def cost_expr(price: float, matchers: tuple[Matcher, ...], rng: str, scale: str = "",
              group: tuple[str, ...] = CLUSTER) -> str:
    """US dollars at list price for the metrics requested over `rng` (times `scale`)."""
    total = q.sum_over(q.RUN_METRICS_REQUESTED, matchers, rng, group)
    return f"{total}{scale} * {price:g} / 1000"


def _stat(title: str, description: str, expr: str, legend: str, unit: str) -> Panel:
    return Panel(title, description, (Target(expr, legend, instant=True),), unit, "stat",
                 width=6)


def _series(title: str, description: str, unit: str, *targets: tuple[str, str],
            width: int = 12) -> Panel:
    return Panel(title, description, tuple(Target(e, legend) for e, legend in targets), unit,
                 width=width)


def _per_run(fn: str, metric: str, m: tuple[Matcher, ...], group: tuple[str, ...]) -> str:
    return f"{fn} {by(group)} ({fn}_over_time({window(metric, m, INTERVAL)}))"


def _per_minute(metric: str, m: tuple[Matcher, ...], group: tuple[str, ...]) -> str:
    return f"{q.sum_over(metric, m, INTERVAL, group)} / {PER_MINUTE}"


def _running(m: tuple[Matcher, ...], rng: str) -> Row:
    """`rng`: LbscrapeNotRunning's range, two schedule intervals at least."""
    return Row("Is it running", (
        _stat(f"Runs in the last {rng}", ABSENCE_TEXT,
              f"sum by (cluster) (count_over_time({window(q.RUN_SUCCESS, m, rng)}))",
              "{{cluster}}", "short"),
        _stat("Successful runs, last hour", "Share of runs that exited 0.",
              f"avg by (cluster) (avg_over_time({window(q.RUN_SUCCESS, m, '1h')}))",
              "{{cluster}}", "percentunit"),
        _stat("Last exit code", "0 ok, 1 failed, 2 bad input, 3 partial.",
              f"max by (cluster) (last_over_time({window(q.RUN_EXIT_CODE, m, rng)}))",
              "{{cluster}}", "short"),
        _stat("Version", "lbscrape_build_info of the latest runs.",
              f"count by (version) (last_over_time({window(q.BUILD_INFO, m, rng)}))",
              "{{version}}", "short"),
    ))


def _runs(m: tuple[Matcher, ...]) -> Row:
    return Row("Runs", (
        _series("Run success", f"1 when a run exited 0. {ABSENCE_TEXT}", "short",
                (_per_run("min", q.RUN_SUCCESS, m, CLUSTER), "{{cluster}} {{region}}")),
        _series("Exit code", "The highest exit code in each interval.", "short",
                (_per_run("max", q.RUN_EXIT_CODE, m, CLUSTER), "{{cluster}} {{region}}")),
        _series("Run duration", "The longest run in each interval; keep it under --deadline.",
                "s", (_per_run("max", q.RUN_DURATION, m, CLUSTER), "{{cluster}} {{region}}")),
        _series("Load balancers per run", "Load balancers found, written and failed; owners "
                "nothing resolved.", "short",
                (_per_run("max", q.RUN_LOAD_BALANCERS, m, ("cluster", "state")),
                 "{{cluster}} {{state}}"),
                (_per_run("max", q.RUN_OWNERS_UNRESOLVED, m, ("cluster",)),
                 "{{cluster}} owners unresolved")),
    ))


def _freshness(m: tuple[Matcher, ...]) -> Row:
    lag = (*m, Matcher("namespace", "=~", "$namespace"),
           Matcher("load_balancer_name", "=~", "$load_balancer_name"))
    return Row("Freshness", (
        _series("Data lag per load balancer", "The run's end minus the load balancer's "
                "checkpoint: the settle delay plus one period when all is well; it grows by "
                "one schedule interval per failed run, and past --max-catchup (50m) the gap "
                "needs `lbscrape backfill`.", "s",
                (_per_run("max", q.LB_LAG, lag, ("cluster", "load_balancer_name")),
                 "{{cluster}} {{load_balancer_name}}"), width=24),
    ))


def _samples(m: tuple[Matcher, ...]) -> Row:
    return Row("Samples", (
        _series("Samples written per minute", "Data samples the endpoint accepted, and the "
                "zeros written for sparse counters.", "short",
                (_per_minute(q.RUN_SAMPLES_WRITTEN, m, ("cluster",)), "{{cluster}} written"),
                (_per_minute(q.RUN_SAMPLES_ZERO_FILLED, m, ("cluster",)),
                 "{{cluster}} zero-filled")),
        _series("Rejected samples per minute by reason", "out_of_order and "
                "duplicate_timestamp after a repeated window are samples already stored; "
                "out_of_bounds and too_old are lost.", "short",
                (_per_minute(q.RUN_SAMPLES_REJECTED, m, ("cluster", "reason")),
                 "{{cluster}} {{reason}}")),
    ))


def _cost(m: tuple[Matcher, ...], price: float) -> Row:
    per_day = q.sum_over(q.RUN_METRICS_REQUESTED, m, "1d", CLUSTER)
    return Row("CloudWatch cost", (
        _stat("Projected monthly cost", f"The last hour's metrics requested x 720, at "
              f"${price:g} per 1,000 (list price; check your region).",
              cost_expr(price, m, "1h", " * 720"), "{{cluster}} {{region}}", "currencyUSD"),
        _stat("Cost of the last 30 days", "Metrics requested in the last 30 days at list "
              "price. Needs 30 days of retention (Prometheus keeps 15 days by default, "
              "--storage.tsdb.retention.time): with less it shows what is kept.",
              cost_expr(price, m, "30d"), "{{cluster}} {{region}}", "currencyUSD"),
        _stat("GetMetricData calls, last hour", "Calls made (each up to 500 metrics).",
              q.sum_over(q.RUN_GMD_CALLS, m, "1h", CLUSTER), "{{cluster}} {{region}}",
              "short"),
        _stat("Metrics requested, last 24 hours", "What CloudWatch bills.", per_day,
              "{{cluster}} {{region}}", "short"),
        _series("Metrics requested per day", "Trailing 24 hours: each (load balancer, "
                "metric, statistic) requested once per run.", "short",
                (per_day, "{{cluster}} {{region}}")),
        _series("Cost per day at list price", "Trailing 24 hours.", "currencyUSD",
                (cost_expr(price, m, "1d"), "{{cluster}} {{region}}")),
    ))


def health_dashboard(cfg: MixinConfig) -> Dashboard:
    base = cfg.selector
    variables = [
        ("cluster", f"label_values({selector(q.RUN_SUCCESS, base)}, cluster)"),
        ("namespace", f"label_values({selector(q.LB_LAG, (*base, _re('cluster')))}, "
                      "namespace)"),
        ("load_balancer_name", "label_values(" + selector(q.LB_LAG, (
            *base, _re("cluster"), _re("namespace"))) + ", load_balancer_name)"),
    ]
    m = (*base, _re("cluster"))
    rows = (_running(m, cfg.range_of("LbscrapeNotRunning")), _runs(m),
            _freshness(m), _samples(m),
            _cost(m, cfg.price_per_1000_metrics))
    key = "health"
    d_uid, d_title = uid(key, None), "lbscrape / Health"
    # One sample per run: a step shorter than the schedule would draw a comb.
    doc = document(d_uid, d_title, "lbscrape's own runs, data freshness and CloudWatch cost, "
                   "from the lbscrape_* self-telemetry series.", variables, rows, cfg,
                   cfg.interval)
    return Dashboard(key, d_uid, d_title, doc, rows, tuple(variables))


def _re(name: str) -> Matcher:
    return Matcher(name, "=~", f"${name}")
