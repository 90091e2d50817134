"""The process's OpenTelemetry metrics in Prometheus's text format, for a ``/metrics`` scrape.

Why not OpenTelemetry's Prometheus exporter package: it brings ``prometheus_client`` and its own
HTTP server on another port, while every ark-mesh process already serves ``/healthz`` and
``/readyz`` on its health port and Kubernetes only needs one port to scrape. So the SDK's
in-memory reader collects on demand (nothing is computed between scrapes) and :func:`render`,
a pure function from the SDK's ``MetricsData`` to text, follows OpenTelemetry's
Prometheus-compatibility rules:

* names: every character outside ``[a-zA-Z0-9_:]`` becomes ``_``; the unit is a suffix
  (``s`` → ``_seconds``, ``By`` → ``_bytes``, ``ms`` → ``_milliseconds``; ``1`` and
  ``{annotations}`` add nothing); monotonic sums end in ``_total``;
* a monotonic sum is a ``counter``, any other sum or gauge a ``gauge``, an explicit-bucket
  histogram a ``histogram`` (``_bucket{le=…}`` cumulative, ``_sum``, ``_count``);
* point attributes become labels (names sanitised the same way, values escaped); the resource
  (``service.name`` …) is the one ``target_info`` series, as the specification asks.

Only cumulative temporality is rendered (the reader's default), which is what Prometheus expects.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Final

from opentelemetry.sdk.metrics.export import (
    Gauge,
    Histogram,
    InMemoryMetricReader,
    Metric,
    MetricsData,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.util.types import AttributeValue

__all__ = ["CONTENT_TYPE", "PrometheusScrape", "metric_name", "render"]

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

_INVALID = re.compile(r"[^a-zA-Z0-9_:]")
_INVALID_LABEL = re.compile(r"[^a-zA-Z0-9_]")
_REPEATS = re.compile(r"__+")
_LE_INF: Final = 'le="+Inf"'
_UNITS: Final = {
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    "By": "bytes",
    "KiBy": "kibibytes",
    "MiBy": "mebibytes",
    "%": "percent",
    "min": "minutes",
    "h": "hours",
}


def _sanitise(name: str, pattern: re.Pattern[str]) -> str:
    cleaned = _REPEATS.sub("_", pattern.sub("_", name))
    return f"_{cleaned}" if cleaned[:1].isdigit() else cleaned


def metric_name(name: str, unit: str | None, *, counter: bool) -> str:
    """The Prometheus name of an OpenTelemetry instrument (see the module docstring)."""
    base = _sanitise(name, _INVALID)
    unit = re.sub(r"\{[^}]*\}", "", unit or "").strip()
    suffix = _UNITS.get(unit, _sanitise(unit, _INVALID) if unit not in ("", "1") else "")
    if suffix and not base.endswith(f"_{suffix}"):
        base = f"{base}_{suffix}"
    if counter and not base.endswith("_total"):
        base = f"{base}_total"
    return base


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _label_value(value: AttributeValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(_label_value(item) for item in value)
    return str(value)


def _labels(attributes: Mapping[str, AttributeValue] | None, extra: str = "") -> str:
    pairs = [
        f'{_sanitise(key, _INVALID_LABEL)}="{_escape(_label_value(value))}"'
        for key, value in sorted((attributes or {}).items())
    ]
    if extra:
        pairs.append(extra)
    return "{" + ",".join(pairs) + "}" if pairs else ""


def _number(value: float | int) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(float(value))


def _family(metric: Metric) -> list[str]:
    data = metric.data
    help_line = _escape(metric.description or metric.name)
    if isinstance(data, Histogram):
        name = metric_name(metric.name, metric.unit, counter=False)
        lines = [f"# HELP {name} {help_line}", f"# TYPE {name} histogram"]
        for point in data.data_points:
            cumulative = 0
            for bound, count in zip(point.explicit_bounds, point.bucket_counts, strict=False):
                cumulative += count
                le = f'le="{_number(float(bound))}"'
                lines.append(f"{name}_bucket{_labels(point.attributes, le)} {cumulative}")
            lines.append(f"{name}_bucket{_labels(point.attributes, _LE_INF)} {point.count}")
            lines.append(f"{name}_sum{_labels(point.attributes)} {_number(point.sum)}")
            lines.append(f"{name}_count{_labels(point.attributes)} {point.count}")
        return lines
    if isinstance(data, Sum):
        counter = data.is_monotonic
    elif isinstance(data, Gauge):
        counter = False
    else:  # exponential histograms are not configured anywhere in ark-mesh
        return []
    name = metric_name(metric.name, metric.unit, counter=counter)
    lines = [f"# HELP {name} {help_line}", f"# TYPE {name} {'counter' if counter else 'gauge'}"]
    lines.extend(
        f"{name}{_labels(point.attributes)} {_number(point.value)}" for point in data.data_points
    )
    return lines


def render(data: MetricsData | None, resource: Resource | None = None) -> str:
    """Prometheus text (format 0.0.4) for everything the SDK collected; one family per name.

    ``resource`` describes the process when nothing was recorded yet, so even an idle replica's
    page says which service it is (``target_info``)."""
    lines: list[str] = []
    seen: set[str] = set()
    for resource_metrics in data.resource_metrics if data is not None else ():
        if "target_info" not in seen:
            seen.add("target_info")
            lines.extend(_target_info(resource_metrics.resource.attributes))
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                family = _family(metric)
                # The same instrument name from two scopes would be two families with one name,
                # which Prometheus rejects; the first one wins and the rest are skipped.
                if family and family[1] not in seen:
                    seen.add(family[1])
                    lines.extend(family)
    if "target_info" not in seen and resource is not None:
        lines[:0] = _target_info(resource.attributes)
    return "\n".join(lines) + "\n" if lines else ""


def _target_info(attributes: Mapping[str, AttributeValue]) -> list[str]:
    items = dict(attributes)
    if not items:
        return []
    return [
        "# HELP target_info Target metadata",
        "# TYPE target_info gauge",
        f"target_info{_labels(items)} 1",
    ]


class PrometheusScrape(InMemoryMetricReader):
    """A metric reader that collects only when scraped; :meth:`exposition` is the page.

    ``resource`` is the one the meter provider is built with, for the page of a process that
    has recorded nothing yet."""

    def __init__(self, resource: Resource | None = None) -> None:
        super().__init__()
        self.resource = resource

    def exposition(self) -> str:
        return render(self.get_metrics_data(), self.resource)
