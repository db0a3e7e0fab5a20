"""ops/alerts.yml, the Prometheus alert rules beside the Grafana dashboard: a rule file
Prometheus loads (``promtool check rules`` when promtool is here: Debian's `prometheus`
package, which scripts/test installs), each rule complete (`for`, a severity, a summary
and a description), and every metric an expression asks for one this service exports:
a renamed metric would otherwise leave its alert silent for ever, which no run shows."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

import metrics
from api.metrics import Heartbeats, ScrapeGauges

RULES = Path(__file__).resolve().parent.parent / "ops" / "alerts.yml"
SEVERITIES = {"warning", "critical"}
_DURATION = re.compile(r"(\d+(ms|[smhdwy]))+")
_ALERT_NAME = re.compile(r"CV[A-Z][A-Za-z0-9]*")

# What a family's samples are called, by its type (prometheus-client's exposition).
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gauge": ("",),
}

# -- PromQL, as much of it as names a metric ----------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")  # (label names and values: no metric there)
_RANGE = re.compile(r"\[[^\]]*\]")
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
# A name not followed by `(` (a function's) and not inside a number (`1e3`, `5m`).
_NAME = re.compile(r"(?<![\w:.])[A-Za-z_:][\w:]*(?![\w:])(?!\s*\()")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}
    | {"group_left", "group_right", "inf", "nan", "Inf", "NaN"}
)


def metric_names(expr: str) -> set[str]:
    """The metrics a PromQL expression selects (not its functions, keywords, labels,
    strings or durations)."""
    text = _STRING.sub(" ", expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _LABEL_LIST.sub(" ", text)
    return {name for name in _NAME.findall(text) if name not in _KEYWORDS}


def test_metric_names_finds_the_selectors_only() -> None:
    expr = (
        'sum by (provider, outcome) (increase(cv_a_total{outcome!="authorized", x=~"y|z"}'
        "[15m] offset 5m)) / on (provider) group_left sum(rate(cv_b_bucket[5m])) > 1e3"
        " and absent(cv_c) unless bool cv_d"
    )
    assert metric_names(expr) == {"cv_a_total", "cv_b_bucket", "cv_c", "cv_d"}


# -- what the service exports -------------------------------------------------------------


class _Read(ScrapeGauges):
    """The web's scrape gauges as it defines them, with their sources answered here."""

    def __init__(self) -> None:
        pass

    def _queue_depths(self) -> dict[str, int] | None:
        return {"cv": 0}

    def _outbox_lag(self) -> float | None:
        return 0.0

    def _heartbeats(self) -> Heartbeats | None:
        return Heartbeats(beating=1, newest_age=1.0, oldest_age=1.0)


def _families(collector: Collector | MetricWrapperBase) -> Iterator[tuple[str, str]]:
    describe = getattr(collector, "describe", None)
    for family in describe() if describe is not None else collector.collect():
        yield family.name, family.type


def exported() -> set[str]:
    """Every sample name the web's /metrics can show: metrics.py's metrics (each
    family's samples by its type) and the scrape's gauges (api.metrics)."""
    collectors: list[Collector | MetricWrapperBase] = [
        value for value in vars(metrics).values() if isinstance(value, MetricWrapperBase)
    ]
    collectors.append(_Read())
    names: set[str] = set()
    for collector in collectors:
        for name, kind in _families(collector):
            names |= {name + suffix for suffix in _SUFFIXES[kind]}
    return names


def test_the_service_exports_what_the_docs_list() -> None:
    names = exported()
    for expected in (
        "cv_authorizations_total",
        "cv_step_attempts_total",
        "cv_request_duration_seconds_bucket",
        "cv_queue_depth",
        "cv_outbox_lag_seconds",
        "cv_subscriptions_open",
        "cv_workers_beating",
        "cv_worker_heartbeat_age_seconds",
        "cv_worker_heartbeat_max_age_seconds",
    ):
        assert expected in names, (expected, sorted(names))


# -- the rules ----------------------------------------------------------------------------


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    assert isinstance(document, dict) and set(document) == {"groups"}, document
    groups = document["groups"]
    assert isinstance(groups, list) and groups
    names = [group["name"] for group in groups]
    assert len(set(names)) == len(names), names
    found: list[dict[str, Any]] = []
    for group in groups:
        assert set(group) <= {"name", "interval", "rules"}, group.keys()
        assert isinstance(group["rules"], list) and group["rules"], group["name"]
        found += group["rules"]
    return found


def test_every_rule_is_a_complete_alert() -> None:
    seen: set[str] = set()
    for rule in rules():
        name = rule.get("alert")
        assert isinstance(name, str) and _ALERT_NAME.fullmatch(name), rule
        assert name not in seen, f"two alerts named {name}"
        seen.add(name)
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, (name, rule)
        assert isinstance(rule["expr"], str) and rule["expr"].strip(), name
        assert _DURATION.fullmatch(str(rule["for"])), (name, rule["for"])
        assert rule["labels"].get("severity") in SEVERITIES, (name, rule["labels"])
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description"}, (name, annotations)
        assert all(isinstance(v, str) and v.strip() for v in annotations.values()), name


def test_every_metric_an_expression_asks_for_is_exported() -> None:
    offered = exported()
    asked = {rule["alert"]: metric_names(rule["expr"]) for rule in rules()}
    assert all(asked.values()), asked  # every rule reads a metric
    unknown = {alert: names - offered for alert, names in asked.items() if names - offered}
    assert not unknown, f"alerts on metrics the service does not export: {unknown}"


def test_the_rules_watch_what_an_operator_is_paged_for() -> None:
    """Failures by code, the outbox's lag, the queues, token refreshes, a worker gone
    (died, or fewer beating), none beating, the sweep not running."""
    exprs = " ".join(rule["expr"] for rule in rules())
    for needle in (
        "cv_authorizations_total",
        "cv_outbox_lag_seconds",
        "cv_queue_depth",
        'step="refresh"',
        'action="dead_workers"',
        "cv_workers_beating",
        "cv_worker_heartbeat_max_age_seconds",
    ):
        assert needle in exprs, needle


@pytest.mark.skipif(shutil.which("promtool") is None, reason="no promtool (Debian: prometheus)")
def test_promtool_checks_the_rules() -> None:
    promtool = shutil.which("promtool")
    assert promtool is not None
    done = subprocess.run(
        [promtool, "check", "rules", str(RULES)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules())} rules found" in done.stdout, done.stdout
