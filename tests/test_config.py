"""Option parsers: every bad value is a ConfigError that names the option."""

from __future__ import annotations

import pytest

from lbscrape.core.config import (
    CheckpointLocation,
    WindowSettings,
    parse_configmap_ref,
    parse_duration,
    parse_label,
    parse_labels,
    parse_remote_write_url,
    redact_url,
    validate_window,
)
from lbscrape.core.errors import ConfigError


@pytest.mark.parametrize(("text", "seconds"), [
    ("120", 120),
    ("120s", 120),
    ("2m", 120),
    ("1h30m", 5400),
    ("1h", 3600),
    ("1d", 86400),
    ("1m30s", 90),
    (" 2M ", 120),
    ("0", 0),
])
def test_parse_duration_ok(text, seconds):
    assert parse_duration(text, "--settle-delay") == seconds


@pytest.mark.parametrize("text", ["2x", "", "   ", "-1", "1.5m", "m", "2ms", "1h 30m", "h30m",
                                  "1e3", "+5"])
def test_parse_duration_rejects(text):
    with pytest.raises(ConfigError) as e:
        parse_duration(text, "--max-catchup")
    assert str(e.value).startswith("--max-catchup: ")
    assert repr(text) in str(e.value)


def window(**kw):
    base = {"settle_delay": 120, "period": 60, "initial_lookback": 600, "max_catchup": 3600}
    return WindowSettings(**{**base, **kw})


def test_validate_window_accepts_defaults():
    w = window()
    assert validate_window(w) is w
    assert validate_window(window(period=300, initial_lookback=3600, max_catchup=3600))


@pytest.mark.parametrize(("kw", "option"), [
    ({"period": 90}, "--period"),
    ({"period": 30}, "--period"),
    ({"period": 0}, "--period"),
    ({"period": -60}, "--period"),
    ({"settle_delay": 0}, "--settle-delay"),
    ({"settle_delay": -5}, "--settle-delay"),
    ({"initial_lookback": 7200}, "--initial-lookback"),
    ({"initial_lookback": 0}, "--initial-lookback"),
    ({"max_catchup": 30, "initial_lookback": 30}, "--max-catchup"),
])
def test_validate_window_rejects(kw, option):
    with pytest.raises(ConfigError) as e:
        validate_window(window(**kw))
    assert str(e.value).startswith(option + ":")


def test_parse_label_ok():
    assert parse_label("team=payments") == ("team", "payments")
    assert parse_label("env=a=b") == ("env", "a=b")
    assert parse_label("_x1=v") == ("_x1", "v")


@pytest.mark.parametrize("text", [
    "1team=x",       # starts with a digit
    "te-am=x",       # '-'
    "te am=x",       # space
    "tëam=x",        # non-ASCII
    "__meta=x",      # reserved prefix
])
def test_parse_label_rejects_bad_names(text):
    with pytest.raises(ConfigError) as e:
        parse_label(text, "--label")
    assert str(e.value).startswith("--label: ")
    assert "not a valid Prometheus label name" in str(e.value)


@pytest.mark.parametrize("name", ["namespace", "cluster", "__name__", "region", "ingress",
                                  "service", "load_balancer", "load_balancer_name",
                                  "ingress_group"])
def test_parse_label_rejects_reserved_names(name):
    with pytest.raises(ConfigError) as e:
        parse_label(f"{name}=x", "--label")
    assert str(e.value).startswith("--label: ")
    assert repr(name) in str(e.value)


def test_parse_label_rejects_the_prefix_of_lbscrapes_own_series():
    with pytest.raises(ConfigError) as e:
        parse_label("lbscrape_job=x", "--label")
    assert str(e.value) == ("--label: 'lbscrape_job': names starting with lbscrape_ are "
                            "reserved for lbscrape's own; choose another name")


@pytest.mark.parametrize("text", ["team", "team=", "=x", "=", ""])
def test_parse_label_rejects_missing_parts(text):
    with pytest.raises(ConfigError) as e:
        parse_label(text, "--label")
    assert str(e.value).startswith("--label: ")
    assert "KEY=VALUE" in str(e.value)


def test_parse_labels_sorts_and_last_wins():
    assert parse_labels(("z=1", "a=2", "z=3")) == (("a", "2"), ("z", "3"))
    with pytest.raises(ConfigError):
        parse_labels(("a=1", "cluster=x"))


@pytest.mark.parametrize("url", [
    "http://prometheus:9090/api/v1/write",
    "https://prom.example.com/api/v1/write",
    "http://127.0.0.1:9090/api/v1/write",
    "https://user:pw@prom.example.com/api/v1/write",
])
def test_parse_remote_write_url_ok(url):
    assert parse_remote_write_url(f"  {url} ") == url


@pytest.mark.parametrize("url", [
    "ftp://prom.example.com/api/v1/write",
    "prom.example.com/api/v1/write",
    "http://",
    "http:///api/v1/write",
    "https://:9090/api/v1/write",
    "",
])
def test_parse_remote_write_url_rejects(url):
    with pytest.raises(ConfigError) as e:
        parse_remote_write_url(url)
    assert str(e.value).startswith("--remote-write-url: ")


def test_parse_remote_write_url_error_does_not_leak_the_password():
    with pytest.raises(ConfigError) as e:
        parse_remote_write_url("ftp://alice:s3cr3t@prom.example.com/write")
    assert "s3cr3t" not in str(e.value)
    assert "alice" not in str(e.value)


@pytest.mark.parametrize("url", ["http://prometheus:90x/api/v1/write",
                                 "http://prometheus:99999/api/v1/write"])
def test_parse_remote_write_url_rejects_bad_port(url):
    with pytest.raises(ConfigError):
        parse_remote_write_url(url)


def test_parse_remote_write_url_rejects_broken_ipv6_with_config_error():
    with pytest.raises(ConfigError):
        parse_remote_write_url("http://[::1/api/v1/write")


def test_parse_remote_write_url_bad_scheme_and_port_is_config_error():
    with pytest.raises(ConfigError) as e:
        parse_remote_write_url("ftp://alice:s3cr3t@prom:abc/write")
    assert "s3cr3t" not in str(e.value)


@pytest.mark.parametrize(("text", "ns", "name"), [
    ("monitoring/lbscrape-checkpoint", "monitoring", "lbscrape-checkpoint"),
    ("a/b", "a", "b"),
    ("kube-system/lb.scrape.1", "kube-system", "lb.scrape.1"),
])
def test_parse_configmap_ref_ok(text, ns, name):
    loc = parse_configmap_ref(text)
    assert loc == CheckpointLocation(ns, name)
    assert str(loc) == f"{ns}/{name}"


@pytest.mark.parametrize("text", ["monitoring", "/name", "ns/", "a/b/c", "Monitoring/x",
                                  "ns/Name", "ns/-x", "ns/x-", "ns/x_y", ""])
def test_parse_configmap_ref_rejects(text):
    with pytest.raises(ConfigError) as e:
        parse_configmap_ref(text)
    assert str(e.value).startswith("--checkpoint-configmap: ")


@pytest.mark.parametrize("text", ["my.ns/lbscrape-checkpoint", "n" * 64 + "/x"])
def test_parse_configmap_ref_rejects_invalid_namespace(text):
    with pytest.raises(ConfigError):
        parse_configmap_ref(text)


@pytest.mark.parametrize(("url", "redacted"), [
    ("https://alice:s3cr3t@prom.example.com:8443/api/v1/write?x=1#f",
     "https://***@prom.example.com:8443/api/v1/write?x=1#f"),
    ("https://alice:s3cr3t@prom.example.com/api/v1/write",
     "https://***@prom.example.com/api/v1/write"),
    ("https://tokenonly@prom.example.com/w", "https://***@prom.example.com/w"),
    ("http://prometheus:9090/api/v1/write", "http://prometheus:9090/api/v1/write"),
])
def test_redact_url(url, redacted):
    assert redact_url(url) == redacted


def test_redact_url_hides_password_with_special_characters():
    out = redact_url("https://alice:p%40ss:w0rd@prom.example.com/w")
    assert "w0rd" not in out and "alice" not in out


def test_redact_url_keeps_ipv6_brackets():
    assert redact_url("http://alice:s3cr3t@[::1]:9090/w") == "http://***@[::1]:9090/w"
