"""Filters, --label-from and the lbscrape.io/* annotations: the pure rules."""

from __future__ import annotations

import pytest

from lbscrape.core.config import (
    MAX_LABEL_VALUE_BYTES,
    RESERVED_LABELS,
    LabelFrom,
    parse_label,
    parse_label_from,
    parse_labels_from,
    parse_namespaces,
)
from lbscrape.core.errors import ConfigError
from lbscrape.core.model import LoadBalancer, Owner, Unresolved
from lbscrape.kube.owner_labels import (
    INVALID_ANNOTATION,
    INVALID_LABEL_VALUE,
    OPTED_OUT,
    Selection,
    parse_labels_annotation,
    plan,
    read_owner,
    sanitise,
    scraped,
    shared,
    value_problem,
)


def owner(name="web", ns="shop", labels=None, annotations=None, kind="Ingress"):
    return Owner(kind, ns, name, (f"{name}.example",), uid=f"uid-{ns}-{name}",
                 labels=labels or {}, annotations=annotations or {})


def lb(*owners, name="k8s-lb"):
    return LoadBalancer(f"arn:{name}", name, "application", f"app/{name}/1", owners)


def test_label_from_takes_a_label_by_default_and_an_annotation_with_a_prefix():
    assert parse_label_from("app.kubernetes.io/name=job") == LabelFrom(
        "app.kubernetes.io/name", "job")
    assert parse_label_from("annotation:example.com/team=team") == LabelFrom(
        "example.com/team", "team", annotation=True)
    assert str(parse_label_from("annotation:example.com/team=team")) == \
        "annotation:example.com/team=team"
    assert parse_label_from("env=env") == LabelFrom("env", "env")


@pytest.mark.parametrize("text, fragment", [
    ("app.kubernetes.io/name", "is not SOURCE=LABEL"),
    ("=job", "is not SOURCE=LABEL"),
    ("annotation:=job", "is not SOURCE=LABEL"),
    ("app=", "is not SOURCE=LABEL"),
    ("bad key=job", "is not a Kubernetes label or annotation key"),
    ("Example.com/x=job", "is not a Kubernetes label or annotation key"),
    ("/name=job", "is not a Kubernetes label or annotation key"),
    ("app=my-label", "not a valid Prometheus label name"),
    ("app=__job", "not a valid Prometheus label name"),
    ("app=namespace", "is set by lbscrape itself"),
    ("app=target_group", "is set by lbscrape itself"),
    ("app=ingress_group", "is set by lbscrape itself"),
    ("app=lbscrape_app", "names starting with lbscrape_ are reserved"),
])
def test_label_from_errors_name_the_option(text, fragment):
    with pytest.raises(ConfigError) as e:
        parse_label_from(text)
    assert str(e.value).startswith("--label-from: ") and fragment in str(e.value)


def test_label_from_keeps_the_order_and_drops_repeats():
    rules = parse_labels_from(("a=job", "b=job", "a=job"))
    assert [r.key for r in rules] == ["a", "b"]


def test_reserved_names_include_the_coming_contract_labels_and_bind_label_too():
    assert {"__name__", "load_balancer_name", "load_balancer", "cluster", "region",
            "namespace", "ingress", "service", "ingress_group", "target_group",
            "target_namespace", "target_service", "target_port"} == RESERVED_LABELS
    with pytest.raises(ConfigError, match="target_port"):
        parse_label("target_port=80")
    with pytest.raises(ConfigError, match="longer than 1024 bytes"):
        parse_label("team=" + "x" * (MAX_LABEL_VALUE_BYTES + 1))
    assert parse_label("team=" + "x" * MAX_LABEL_VALUE_BYTES)[0] == "team"


def test_namespaces_are_validated_and_not_both_included_and_excluded():
    assert parse_namespaces(("b", "a", "a"), ("c",)) == (("a", "b"), ("c",))
    with pytest.raises(ConfigError, match="^--namespace: 'Shop' is not a namespace name"):
        parse_namespaces(("Shop",), ())
    with pytest.raises(ConfigError, match="^--exclude-namespace: shop also given"):
        parse_namespaces(("shop",), ("shop",))


def test_selection_reasons():
    sel = Selection.of(["shop", "blog"], ["blog"])
    assert sel.skip_reason(owner(ns="other")) == "namespace not selected by --namespace"
    assert sel.skip_reason(owner(ns="blog")) == "namespace excluded by --exclude-namespace"
    assert sel.skip_reason(owner()) is None
    assert sel.skip_reason(owner(annotations={"lbscrape.io/scrape": "false"})) == OPTED_OUT
    assert sel.skip_reason(owner(annotations={"lbscrape.io/scrape": " False "})) == OPTED_OUT
    assert sel.skip_reason(owner(annotations={"lbscrape.io/scrape": "true"})) is None
    assert sel.skip_reason(owner(annotations={"lbscrape.io/scrape": "no"})) is None
    assert Selection().skip_reason(owner(ns="anything")) is None


def test_an_unreadable_opt_out_is_a_problem_and_the_object_is_scraped():
    o = owner(annotations={"lbscrape.io/scrape": "nope"})
    (p,) = read_owner(o, ()).problems
    assert p.reason == INVALID_ANNOTATION
    assert str(p) == ("Ingress shop/web: annotation lbscrape.io/scrape: 'nope' is neither "
                      '"true" nor "false"; scraped as if "true"')


def test_label_from_copies_labels_and_annotations_first_source_wins_missing_is_no_label():
    rules = parse_labels_from((
        "app.kubernetes.io/name=job", "app=job", "annotation:example.com/team=team",
        "env=env", "annotation:example.com/missing=missing"))
    got = read_owner(owner(labels={"app": "web-legacy", "env": ""},
                           annotations={"example.com/team": "payments"}), rules)
    assert got.labels == {"job": "web-legacy", "team": "payments"}  # env "" is no label
    got = read_owner(owner(labels={"app.kubernetes.io/name": "web", "app": "x"}), rules)
    assert got.labels == {"job": "web"} and not got.problems
    # A label is not an annotation and the other way round.
    got = read_owner(owner(annotations={"app.kubernetes.io/name": "web"},
                           labels={"example.com/team": "payments"}), rules)
    assert got.labels == {}


def test_the_annotation_wins_over_label_from():
    rules = parse_labels_from(("app.kubernetes.io/team=team",))
    got = read_owner(owner(labels={"app.kubernetes.io/team": "a"},
                           annotations={"lbscrape.io/labels": "team=b"}), rules)
    assert got.labels == {"team": "b"}


def test_a_bad_copied_value_is_dropped_with_a_problem_and_the_next_source_is_tried():
    rules = parse_labels_from(("annotation:example.com/team=team", "team=team"))
    o = owner(labels={"team": "payments"},
              annotations={"example.com/team": "pay\nments"})
    got = read_owner(o, rules)
    assert got.labels == {"team": "payments"}
    (p,) = got.problems
    assert p.reason == INVALID_LABEL_VALUE
    assert str(p) == ("Ingress shop/web: annotation example.com/team (--label-from "
                      "annotation:example.com/team=team): value has a control character "
                      "(a newline, a tab, ...); label team not set")


def test_labels_annotation_parsing_sanitising_and_every_kind_of_bad_entry():
    labels, problems = parse_labels_annotation(
        " team=payments, tier-name = edge,1zone=a,app.kubernetes.io/part-of=shop,,"
        "namespace=evil,__name__=x,__meta=y,justtext,=v,empty=,long=" + "é" * 513 +
        ",ctl=a\tb,eq=a=b")
    assert labels == {"team": "payments", "tier_name": "edge", "_1zone": "a",
                      "app_kubernetes_io_part_of": "shop", "eq": "a=b"}
    assert problems == [
        "label namespace is set by lbscrape itself and cannot be overridden; ignored",
        "label name '__name__' starts with __, which Prometheus reserves; ignored",
        "label name '__meta' starts with __, which Prometheus reserves; ignored",
        "'justtext' is not KEY=VALUE; ignored",
        "'=v' is not KEY=VALUE; ignored",
        "label empty has an empty value; ignored",
        "label long: value is 1026 bytes, longer than the 1024 lbscrape writes; not set",
        "label ctl: value has a control character (a newline, a tab, ...); not set",
    ]


def test_the_lbscrape_prefix_is_reserved_in_the_labels_annotation():
    labels, problems = parse_labels_annotation("team=a,lbscrape_run=b,LBSCRAPE_X=c")
    assert labels == {"team": "a", "LBSCRAPE_X": "c"}  # label names are case-sensitive
    assert problems == ["label lbscrape_run: names starting with lbscrape_ are reserved for "
                        "lbscrape's own; ignored"]


def test_a_long_bad_entry_is_quoted_shortened():
    _, (problem,) = parse_labels_annotation("x" * 500)
    assert problem == f"'{'x' * 60}...' is not KEY=VALUE; ignored"


@pytest.mark.parametrize("name, want", [
    ("team", "team"), ("tier-1.zone", "tier_1_zone"), ("1x", "_1x"), ("Ärger", "_rger"),
    ("a/b", "a_b"), ("_x", "_x")])
def test_sanitise(name, want):
    assert sanitise(name) == want


def test_value_limits():
    assert value_problem("x" * MAX_LABEL_VALUE_BYTES) is None
    assert value_problem("ü" * 600) == ("value is 1200 bytes, longer than the 1024 "
                                         "lbscrape writes")
    assert value_problem("a\x00b") is not None
    assert value_problem("a\ud800b") == "value is not valid Unicode text"
    assert value_problem("payments ünd tëam ✓") is None


def test_shared_keeps_only_labels_every_owner_gives_alike():
    assert shared([]) == {}
    assert shared([{"a": "1", "b": "2"}]) == {"a": "1", "b": "2"}
    assert shared([{"a": "1", "b": "2", "c": "3"}, {"a": "1", "b": "x"}]) == {"a": "1"}


def test_plan_scrapes_a_load_balancer_any_selected_owner_owns_labelled_by_all_owners():
    rules = parse_labels_from(("team=team", "tier=tier"))
    a = owner("a", labels={"team": "pay", "tier": "edge"})
    b = owner("b", labels={"team": "pay", "tier": "core"},
              annotations={"lbscrape.io/scrape": "false", "lbscrape.io/labels": "bad"})
    c = owner("c", annotations={"lbscrape.io/scrape": "false"})
    d = owner("d", ns="blog", annotations={"lbscrape.io/labels": "x"})
    group, alone, other = lb(a, b, name="group"), lb(c, name="alone"), lb(d, name="other")
    lost = Unresolved(owner("gone"), "gone.example")
    lost_optout = Unresolved(owner("gone2", annotations={"lbscrape.io/scrape": "false"}),
                             "gone2.example")
    p = plan([a, b, c, d, lost.owner, lost_optout.owner], [group, alone, other],
             [lost, lost_optout], Selection.of((), ["blog"]), rules)
    assert p.load_balancers == (group,)
    # The opted-out member still describes the shared load balancer: tier disagrees.
    assert p.labels == {group.key: {"team": "pay"}}
    assert p.extra_labels(group) == (("team", "pay"),)
    assert p.selected == (a, lost.owner)
    assert dict(p.skipped) == {b: OPTED_OUT, c: OPTED_OUT,
                               d: "namespace excluded by --exclude-namespace",
                               lost_optout.owner: OPTED_OUT}
    assert p.unresolved == (lost,)
    assert p.problems == ()  # b's and d's bad annotations: they asked to be left alone
    assert scraped([group, alone, other], Selection.of((), ["blog"])) == (group,)
