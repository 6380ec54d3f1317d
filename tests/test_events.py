"""Event names, bodies and the recorder against the fake API server (real client)."""

from __future__ import annotations

import logging

from lbscrape.core.budget import Budget
from lbscrape.core.model import Owner
from lbscrape.kube import events
from lbscrape.kube.client import make_api_client

NOW = 1_790_000_000


def owner(name="web", uid="uid-1", kind="Ingress"):
    return Owner(kind, "shop", name, ("h",), uid=uid)


def test_gather_joins_messages_per_owner_and_reason_in_order():
    a, b = owner("a"), owner("b")
    got = events.gather([(a, "R1", "one"), (b, "R1", "x"), (a, "R2", "y"), (a, "R1", "two"),
                         (a, "R1", "one")])
    assert got == [events.Notice(a, "R1", "one; two"), events.Notice(b, "R1", "x"),
                   events.Notice(a, "R2", "y")]
    (long,) = events.gather([(a, "R", "m" * 2000)])
    assert len(long.message) == events.MAX_MESSAGE and long.message.endswith("...")


def test_the_name_is_the_same_for_the_same_state_and_new_for_a_new_one():
    n = events.Notice(owner(), "LoadBalancerNotFound", "no load balancer")
    name = events.event_name(n)
    assert name == events.event_name(events.Notice(owner(), n.reason, n.message))
    assert name.startswith("web.lbscrape-") and len(name) == len("web.lbscrape-") + 16
    others = {events.event_name(events.Notice(owner(), n.reason, "other message")),
              events.event_name(events.Notice(owner(), "InvalidAnnotation", n.message)),
              events.event_name(events.Notice(owner(uid="uid-2"), n.reason, n.message)),
              events.event_name(events.Notice(owner(kind="Service"), n.reason, n.message))}
    assert name not in others and len(others) == 4


def test_a_long_object_name_still_gives_a_valid_event_name():
    name = events.event_name(events.Notice(owner("a" * 199 + "-" + "b" * 53), "R", "m"))
    assert len(name) <= 253 and ".." not in name and "-." not in name
    assert name.startswith("a" * 199 + ".lbscrape-")


def test_the_body_points_at_the_object_as_kubectl_describe_looks_for_it():
    body = events.event(events.Notice(owner(kind="Service"), "R", "m"), NOW)
    ref = body.involved_object
    assert (ref.kind, ref.api_version, ref.namespace, ref.name, ref.uid) == (
        "Service", "v1", "shop", "web", "uid-1")
    assert (body.type, body.reason, body.message, body.count) == ("Warning", "R", "m", 1)
    assert body.source.component == "lbscrape" and body.reporting_component == "lbscrape"
    assert body.first_timestamp == body.last_timestamp
    assert int(body.first_timestamp.timestamp()) == NOW
    assert body.metadata.namespace == "shop"


def recorder(kube):
    api, _ = make_api_client(kube.kubeconfig_path, None)
    return events.Recorder(api)


def test_recording_twice_creates_once(kube):
    notices = [events.Notice(owner("a"), "R", "m"), events.Notice(owner("b"), "R", "m")]
    first = recorder(kube).record(notices, NOW)
    assert (first.recorded, first.already, first.failed) == (2, 0, 0)
    second = recorder(kube).record(notices, NOW + 60)
    assert (second.recorded, second.already, second.failed) == (0, 2, 0)
    stored = kube.get("v1", "events", "shop", events.event_name(notices[0]))
    assert stored["reason"] == "R" and stored["involvedObject"]["uid"] == "uid-1"
    assert [s.verb for s in kube.seen if s.resource == "events"] == ["create"] * 4


def test_forbidden_stops_the_rest_with_one_warning(kube, caplog):
    kube.inject("POST", "/events", 403)
    notices = [events.Notice(owner(n), "R", "m") for n in "abc"]
    with caplog.at_level(logging.WARNING, "lbscrape"):
        out = recorder(kube).record(notices, NOW)
    assert (out.recorded, out.failed) == (0, 3)
    assert len([s for s in kube.seen if s.resource == "events"]) == 1
    (line,) = [r.getMessage() for r in caplog.records]
    assert "cannot record Kubernetes Events" in line and "forbidden (403)" in line
    assert "3 Events not recorded" in line and "--no-events" in line


def test_a_server_error_fails_only_its_event(kube, caplog):
    kube.inject("POST", "/events", 500)
    notices = [events.Notice(owner(n), "R", "m") for n in "ab"]
    with caplog.at_level(logging.WARNING, "lbscrape"):
        out = recorder(kube).record(notices, NOW)
    assert (out.recorded, out.failed) == (1, 1)
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("cannot record the R Event on Ingress shop/a: ")


def test_an_unreachable_api_server_is_tried_once(tmp_path, caplog):
    from tests.fakekube import FakeKube

    fake = FakeKube()
    fake.start()
    path = fake.write_kubeconfig(str(tmp_path / "kubeconfig"))
    fake.stop()
    api, _ = make_api_client(path, None)
    with caplog.at_level(logging.WARNING, "lbscrape"):
        out = events.Recorder(api).record([events.Notice(owner(n), "R", "m") for n in "ab"],
                                          NOW)
    assert (out.recorded, out.failed) == (0, 2)
    (line,) = [r.getMessage() for r in caplog.records if r.name.startswith("lbscrape")]
    assert "unreachable" in line and "2 Events not recorded" in line


def test_no_time_left_records_nothing(kube, caplog):
    budget = Budget(0.5)
    with caplog.at_level(logging.WARNING, "lbscrape"):
        out = recorder(kube).record([events.Notice(owner(), "R", "m")], NOW, budget)
    assert (out.recorded, out.failed) == (0, 1)
    assert not [s for s in kube.seen if s.resource == "events"]
    assert "1 Kubernetes Events not recorded" in caplog.records[0].getMessage()
