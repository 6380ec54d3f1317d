"""Shards (--shard INDEX/COUNT, --shards COUNT with JOB_COMPLETION_INDEX): the split, bad
input, and end to end against real Prometheus: N shards, one after another or at the same
time, write exactly what one run writes, sharing one checkpoint ConfigMap."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter

import pytest
from click.testing import CliRunner

from lbscrape.cli import cli
from lbscrape.core.checkpoint import prune
from lbscrape.core.errors import ConfigError
from lbscrape.core.model import LoadBalancer, Owner, isotime
from lbscrape.core.shard import Shard, notice_shards, parse_count, parse_shard, shard_of
from lbscrape.kube.owner_labels import OwnerPlan
from tests import world

CLUSTER = "shards"
N_ALB, N_NLB = 6, 2


# --- the split --------------------------------------------------------------------------


def test_the_shard_of_a_key_never_changes():
    # sha256, not hash(): the same in every process and every release. Pinned, so a change
    # of the rule (which would move every load balancer) cannot go unnoticed.
    keys = ["app/k8s-shop-web-0123456789/0123456789abcdef", "net/k8s-db/1", "elb/legacy"]
    assert [shard_of(k, 3) for k in keys] == [0, 1, 1]
    assert [shard_of(k, 7) for k in keys] == [0, 2, 5]
    code = "from lbscrape.core.shard import shard_of; print(shard_of('net/k8s-db/1', 7))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONHASHSEED": "12345"}, check=True).stdout
    assert out.strip() == "2"


def test_every_key_is_in_exactly_one_shard_and_shards_are_even():
    keys = [f"app/k8s-ns{i}-web-{i:010d}/{i:016x}" for i in range(3000)]
    for count in (1, 2, 3, 7):
        owners = Counter()
        for k in keys:
            (mine,) = [i for i in range(count) if Shard(i, count).owns(k)]
            owners[mine] += 1
        assert set(owners) == set(range(count))
        assert max(owners.values()) - min(owners.values()) < 0.15 * len(keys) / count + 10


@pytest.mark.parametrize(("shard", "shards", "index", "want"), [
    ("0/3", None, None, Shard(0, 3)),
    (" 2/3 ", None, "7", Shard(2, 3)),
    ("0/1", None, None, Shard(0, 1)),
    (None, "3", "1", Shard(1, 3)),
    (None, " 4 ", "3", Shard(3, 4)),
    (None, None, "1", None),
    ("", "", None, None),
])
def test_parse_shard(shard, shards, index, want):
    assert parse_shard(shard, shards, index) == want


@pytest.mark.parametrize(("shard", "shards", "index", "option", "says"), [
    ("0/0", None, None, "--shard", "1 or more"),
    ("3/2", None, None, "--shard", "not below the number of shards 2"),
    ("2/2", None, None, "--shard", "indexes run from 0 to 1"),
    ("-1/2", None, None, "--shard", "give INDEX/COUNT"),
    ("1", None, None, "--shard", "give INDEX/COUNT"),
    ("a/b", None, None, "--shard", "give INDEX/COUNT"),
    ("1/2/3", None, None, "--shard", "give INDEX/COUNT"),
    ("١/٣", None, None, "--shard", "give INDEX/COUNT"),  # digits, but not ASCII
    ("0/2", "2", "0", "--shard", "not together with --shards"),
    (None, "3", None, "--shards", "JOB_COMPLETION_INDEX is not set"),
    (None, "3", " ", "--shards", "JOB_COMPLETION_INDEX is not set"),
    (None, "3", "3", "--shards", "not below the number of shards 3"),
    (None, "3", "-1", "--shards", "cannot read JOB_COMPLETION_INDEX='-1'"),
    (None, "0", "0", "--shards", "1 or more"),
    (None, "three", "0", "--shards", "cannot read 'three'"),
])
def test_parse_shard_refuses_bad_input_naming_the_option(shard, shards, index, option, says):
    with pytest.raises(ConfigError) as e:
        parse_shard(shard, shards, index)
    assert str(e.value).startswith(f"{option}: ") and says in str(e.value)
    assert "\n" not in str(e.value)


def test_parse_count():
    assert parse_count(None) is None and parse_count("3") == 3
    for bad in ("0", "-2", "x"):
        with pytest.raises(ConfigError, match="^--shards: "):
            parse_count(bad)


def test_a_shard_keeps_every_other_shards_checkpoints_whatever_their_age():
    keys = {f"app/lb{i}/x": 100 for i in range(30)}
    shard = Shard(1, 3)
    present = {k for k in keys if shard.owns(k)} - {"app/lb7/x", "app/lb8/x"}
    kept = prune(keys, 200, shard.keep(present))
    # Only this shard's keys that it did not see are old enough to forget.
    assert set(keys) - set(kept) == {k for k in keys if shard.owns(k) and k not in present}
    assert all(k in kept for k in keys if not shard.owns(k))
    assert prune(keys, 200, present) == {k: 100 for k in present}  # unsharded: all others go


def test_an_owners_events_go_to_the_shard_of_its_first_load_balancer():
    def lb(key, *owners):
        _, name, rest = key.split("/")
        return LoadBalancer(None, name, "application", key, owners)

    a, b, lonely = (Owner("Ingress", "ns", n, ()) for n in ("a", "b", "lonely"))
    lbs = [lb("app/zz/1", a), lb("app/aa/1", a, b), lb("app/mm/1", b)]
    home = notice_shards(lbs, 5)
    assert home == {a: shard_of("app/aa/1", 5), b: shard_of("app/aa/1", 5)}
    assert lonely not in home  # no load balancer: shard 0 records its Events
    plan = OwnerPlan((a, b, lonely), (), tuple(lbs), {}, (), ())
    shares = [plan.for_shard(Shard(i, 5)).load_balancers for i in range(5)]
    assert sorted(x.key for share in shares for x in share) == sorted(x.key for x in lbs)


# --- bad input on the command line: one line, exit 2, nothing contacted -------------------


RUN = ["run", "--cluster", "c", "--region", "us-east-1",
       "--remote-write-url", "http://127.0.0.1:9/api/v1/write"]


@pytest.mark.parametrize(("args", "env", "names"), [
    (["--shard", "0/0"], {}, "--shard"),
    (["--shard", "3/2"], {}, "--shard"),
    (["--shard", "-1/2"], {}, "--shard"),
    (["--shard", "0/2", "--shards", "2"], {"JOB_COMPLETION_INDEX": "0"}, "--shard"),
    (["--shards", "2"], {}, "JOB_COMPLETION_INDEX"),
    ([], {"LBSCRAPE_SHARDS": "2"}, "JOB_COMPLETION_INDEX"),
    ([], {"LBSCRAPE_SHARD": "2/2"}, "--shard"),
    ([], {"LBSCRAPE_SHARDS": "2", "JOB_COMPLETION_INDEX": "5"}, "--shards"),
])
def test_bad_shard_is_one_line_exit_2_and_touches_nothing(kube, monkeypatch, args, env, names):
    monkeypatch.delenv("JOB_COMPLETION_INDEX", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    result = CliRunner().invoke(cli, [*RUN, "--kubeconfig", kube.kubeconfig_path, *args])
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("lbscrape: error:") and names in line
    assert kube.seen == []


@pytest.mark.parametrize("command", ["discover", "estimate"])
def test_bad_shards_of_discover_and_estimate(kube, command):
    result = CliRunner().invoke(cli, [command, "--region", "us-east-1", "--kubeconfig",
                                      kube.kubeconfig_path, "--shards", "0"])
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("lbscrape: error: --shards:")
    assert kube.seen == []


# --- end to end: the fake Kubernetes API, moto, real Prometheus ---------------------------


class World:
    """N_ALB ALBs and N_NLB NLBs with owners and a minute of CloudWatch data each, one
    owner whose hostname matches nothing, one with an invalid annotation."""

    def __init__(self, aws, kube):
        self.aws, self.kube = aws, kube
        self.clock = int(time.time())
        minutes = [self.clock // 60 * 60 - 60 * i for i in range(40, -1, -1)]
        kube.put("networking.k8s.io/v1", "ingressclasses", world.ingress_class())
        self.lbs = []
        for i in range(N_ALB + N_NLB):
            alb = i < N_ALB
            lb = aws.create_lb(f"k8s-s{i}-web-0123456789", "application" if alb else "network")
            self.lbs.append(lb)
            notes = {"lbscrape.io/labels": "not a pair"} if i == 1 else None
            if alb:
                kube.put("networking.k8s.io/v1", "ingresses",
                         world.ingress(f"s{i}", "web", lb.dns_name, annotations=notes))
                aws.put(lb, "RequestCount", [(m, 1000.0 * i + j) for j, m in enumerate(minutes)])
                aws.put(lb, "HTTPCode_ELB_5XX_Count",
                        [(m, float(j % 4)) for j, m in enumerate(minutes) if j % 4])
            else:
                kube.put("v1", "services", world.service(f"s{i}", "db", lb.dns_name,
                                                         lb_class="service.k8s.aws/nlb"))
                aws.put(lb, "NewFlowCount", [(m, 7.0 * i + j) for j, m in enumerate(minutes)])
        kube.put("networking.k8s.io/v1", "ingresses", world.ingress(
            "blog", "gone", "k8s-blog-gone-1.us-east-1.elb.amazonaws.com"))

    def args(self, prom, copy, now):
        """One copy of the data, its own checkpoint ConfigMap and a label copy=COPY."""
        return ["run", "--cluster", CLUSTER, "--region", "us-east-1",
                "--kubeconfig", self.kube.kubeconfig_path, "--remote-write-url", prom.write_url,
                "--checkpoint-configmap", f"monitoring/{copy}", "--label", f"copy={copy}",
                "--now", str(now), "--log-format", "json", "--remote-write-retries", "1"]

    def run(self, prom, copy, now, *extra):
        result = CliRunner().invoke(cli, [*self.args(prom, copy, now), *extra],
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output + result.stderr
        return summary(result.stderr)

    def checkpoint(self, name):
        cm = self.kube.get("v1", "configmaps", "monitoring", name)
        return json.loads(cm["data"]["checkpoint.json"])["load_balancers"]

    def seed_checkpoint(self, name, ends):
        self.kube.put("v1", "configmaps", {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"namespace": "monitoring", "name": name, "resourceVersion": "1",
                         "uid": f"uid-{name}", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "data": {"checkpoint.json": json.dumps(
                {"format": 1, "load_balancers": {k: isotime(v) for k, v in ends.items()}})}})

    def events(self):
        return sorted((e["metadata"]["namespace"], e["reason"], e["message"])
                      for (_, res), objs in self.kube._objects.items() if res == "events"
                      for e in objs.values())


def summary(stderr):
    """The counters of the run's last log line."""
    msg = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")][-1]["msg"]
    return {k: v for k, _, v in (w.partition("=") for w in msg.split()) if _}


def everything(prom, copy):
    """Every raw sample of one copy, by its labels but copy."""
    got = prom.raw(f'{{__name__=~"(alb|nlb)_.+", copy="{copy}"}}')
    assert got
    return {tuple(kv for kv in labels if kv[0] != "copy"): pts for labels, pts in got.items()}


def added(summaries, key):
    return sum(int(s[key]) for s in summaries)


def stale_keys():
    """One deleted load balancer's checkpoint per shard of 3, older than the retention."""
    found = {}
    i = 0
    while len(found) < 3:
        key = f"app/k8s-deleted-{i}/0123456789abcdef"
        found.setdefault(shard_of(key, 3), key)
        i += 1
    return [found[s] for s in range(3)]


def test_three_shards_one_after_another_write_exactly_what_one_run_writes(
        aws, kube, prometheus):
    w = World(aws, kube)
    stale = stale_keys()
    old = w.clock - 8 * 86400
    for name in ("single", "sharded"):
        w.seed_checkpoint(name, dict.fromkeys(stale, old))
    for round_, (count, now) in enumerate([(3, w.clock - 20 * 60), (2, w.clock - 16 * 60)]):
        parts = []
        for i in range(count):
            parts.append(w.run(prometheus, "sharded", now, "--shard", f"{i}/{count}"))
            if round_ == 0:
                # A shard forgets only its own old checkpoints, never another shard's.
                assert sorted(set(stale) & set(w.checkpoint("sharded"))) == stale[i + 1:]
        whole = w.run(prometheus, "single", now)
        # No load balancer in two shards, none left out; each fetched and wrote its own.
        assert [int(p["lbs_resolved"]) + int(p["lbs_other_shards"]) for p in parts] == \
            [N_ALB + N_NLB] * count
        for key in ("lbs_resolved", "lbs_written", "metrics_requested", "samples_written",
                    "samples_zero_filled", "unresolved"):
            assert added(parts, key) == int(whole[key]), key
        assert added(parts, "samples_written") > 0
        assert everything(prometheus, "sharded") == everything(prometheus, "single")
        assert w.checkpoint("sharded") == w.checkpoint("single")
        assert len(w.checkpoint("sharded")) == N_ALB + N_NLB
        if round_ == 0:
            # Each Warning Event recorded once, by one shard, with the message one run
            # gives it: the unsharded run after them found every one already there.
            assert added(parts, "events_recorded") == 2 and whole["events_recorded"] == "0"
            assert sorted(e[1] for e in w.events()) == ["InvalidAnnotation",
                                                        "LoadBalancerNotFound"]
    # Changing 3 shards to 2 kept every checkpoint: that round wrote just its minutes, as
    # the unsharded run did (a lost checkpoint would re-send --initial-lookback).
    assert int(whole["samples_written"]) == added(parts, "samples_written")


def test_shards_at_the_same_time_as_an_indexed_job_write_what_one_run_writes(
        aws, kube, prometheus, tmp_path):
    w = World(aws, kube)
    now = w.clock - 15 * 60
    # As the Indexed Job's pods: LBSCRAPE_SHARDS, and JOB_COMPLETION_INDEX set by Kubernetes.
    env = {**os.environ, "LBSCRAPE_SHARDS": "3"}
    logs = [open(tmp_path / f"shard-{i}.log", "w+") for i in range(3)]  # noqa: SIM115
    procs = [subprocess.Popen([sys.executable, "-m", "lbscrape",
                               *w.args(prometheus, "sharded", now)],
                              env={**env, "JOB_COMPLETION_INDEX": str(i)},
                              stdout=logs[i], stderr=logs[i]) for i in range(3)]
    try:
        codes = [p.wait(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    texts = []
    for f in logs:
        f.seek(0)
        texts.append(f.read())
        f.close()
    assert codes == [0, 0, 0], texts
    parts = [summary(t) for t in texts]
    whole = w.run(prometheus, "single", now)
    assert all(f'shard={i}/3' in t for i, t in enumerate(texts))
    assert added(parts, "lbs_resolved") == int(whole["lbs_resolved"]) == N_ALB + N_NLB
    assert added(parts, "samples_written") == int(whole["samples_written"]) > 0
    assert everything(prometheus, "sharded") == everything(prometheus, "single")
    # Three writers of one ConfigMap at once: compare-and-swap merged every entry.
    assert w.checkpoint("sharded") == w.checkpoint("single")
    assert len(w.checkpoint("sharded")) == N_ALB + N_NLB
    # Each shard's own series are its own (a shard label); the lags are per load balancer.
    own = prometheus.raw('lbscrape_run_load_balancers{copy="sharded",state="found"}')
    found = {dict(k)["shard"]: [v for _, v in pts] for k, pts in own.items()}
    assert sorted(found) == ["0/3", "1/3", "2/3"]
    assert sum(v for (v,) in found.values()) == N_ALB + N_NLB
    lags = prometheus.raw('lbscrape_load_balancer_lag_seconds{copy="sharded"}')
    assert len(lags) == N_ALB + N_NLB and not [k for k in lags if "shard" in dict(k)]


def test_discover_and_estimate_say_which_shard(aws, kube):
    w = World(aws, kube)
    result = CliRunner().invoke(cli, ["discover", "--cluster", CLUSTER, "--region", "us-east-1",
                                      "--kubeconfig", kube.kubeconfig_path, "--shards", "3",
                                      "-o", "json"])
    assert result.exit_code == 3  # the owner whose hostname matches nothing
    rows = json.loads(result.output)["resolved"]
    assert {r["load_balancer"]: r["shard"] for r in rows} == {
        lb.dimension: shard_of(lb.dimension, 3) for lb in w.lbs}
    table = CliRunner().invoke(cli, ["discover", "--cluster", CLUSTER, "--region", "us-east-1",
                                     "--kubeconfig", kube.kubeconfig_path, "--shards", "3"])
    heading, *lines = table.output.splitlines()
    assert heading.split()[:5] == ["OBJECT", "LOAD", "BALANCER", "SHARD", "TYPE"]
    lb0 = w.lbs[0]
    (row,) = [line for line in lines if lb0.name in line]
    assert f" {shard_of(lb0.dimension, 3)}/3 " in row
    est = CliRunner().invoke(cli, ["estimate", "--cluster", CLUSTER, "--region", "us-east-1",
                                   "--kubeconfig", kube.kubeconfig_path, "--shards", "3",
                                   "-o", "json"])
    assert est.exit_code == 0, est.output
    doc = json.loads(est.output)
    shares = Counter(shard_of(lb.dimension, 3) for lb in w.lbs)
    assert [s["load_balancers"] for s in doc["shards"]] == [shares[i] for i in range(3)]
    assert sum(s["per_run"]["metrics_requested"] for s in doc["shards"]) == \
        doc["per_run"]["metrics_requested"]
    text = CliRunner().invoke(cli, ["estimate", "--cluster", CLUSTER, "--region", "us-east-1",
                                    "--kubeconfig", kube.kubeconfig_path, "--shards", "3"]).output
    assert "SHARD  LOAD BALANCERS  CALLS/RUN  METRICS/RUN" in text
    assert "shard" not in json.loads(CliRunner().invoke(cli, [
        "discover", "--cluster", CLUSTER, "--region", "us-east-1", "--kubeconfig",
        kube.kubeconfig_path, "-o", "json"]).output)["resolved"][0]
