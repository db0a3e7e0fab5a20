"""Reading a Prometheus exposition (the web's /metrics, the exporter's, the process's)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["value"]


def value(text: str, sample: str, **labels: str) -> float:
    """The sample's value (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == sample and s.labels == labels:
                return float(s.value)
    return 0.0
