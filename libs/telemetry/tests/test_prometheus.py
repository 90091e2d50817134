"""The ``/metrics`` page: OpenTelemetry instruments rendered in Prometheus's text format."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource

from ark_mesh.telemetry import (
    PrometheusScrape,
    TelemetryConfigError,
    prometheus_wanted,
)
from ark_mesh.telemetry.messaging import SECONDS_BUCKETS
from ark_mesh.telemetry.prometheus import metric_name, render


def test_names_follow_opentelemetry_prometheus_rules() -> None:
    assert metric_name("messaging.client.consumed.messages", "{message}", counter=True) == (
        "messaging_client_consumed_messages_total"
    )
    assert metric_name("messaging.process.duration", "s", counter=False) == (
        "messaging_process_duration_seconds"
    )
    assert metric_name("ark.bus.messages.in_flight", "{message}", counter=False) == (
        "ark_bus_messages_in_flight"
    )
    assert metric_name("body.size", "By", counter=False) == "body_size_bytes"
    assert metric_name("ratio", "1", counter=False) == "ratio"
    assert metric_name("2xx-count", "", counter=True) == "_2xx_count_total"
    assert metric_name("already_seconds", "s", counter=False) == "already_seconds"


def test_counter_gauge_and_histogram_render_with_labels_and_target_info() -> None:
    reader = PrometheusScrape()
    provider = MeterProvider(
        resource=Resource.create({"service.name": "query-reconciler"}), metric_readers=[reader]
    )
    meter = provider.get_meter("ark_mesh.bus")
    consumed = meter.create_counter("messaging.client.consumed.messages", unit="{message}")
    in_flight = meter.create_up_down_counter("ark.bus.messages.in_flight", unit="{message}")
    duration = meter.create_histogram(
        "messaging.process.duration",
        unit="s",
        description="How long",
        explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
    )
    consumed.add(3, {"messaging.consumer.group.name": "query-reconciler", "ark.outcome": "ack"})
    consumed.add(1, {"messaging.consumer.group.name": "query-reconciler", "ark.outcome": 'n"a\\k'})
    in_flight.add(2, {"messaging.consumer.group.name": "query-reconciler"})
    in_flight.add(-1, {"messaging.consumer.group.name": "query-reconciler"})
    duration.record(0.004)
    duration.record(0.2)
    duration.record(30.0)

    page = reader.exposition()
    lines = page.splitlines()

    assert "# TYPE messaging_client_consumed_messages_total counter" in lines
    assert (
        'messaging_client_consumed_messages_total{ark_outcome="ack",'
        'messaging_consumer_group_name="query-reconciler"} 3' in lines
    )
    # Label values are escaped, never break the line.
    assert (
        'messaging_client_consumed_messages_total{ark_outcome="n\\"a\\\\k",'
        'messaging_consumer_group_name="query-reconciler"} 1' in lines
    )
    # A non-monotonic sum is a gauge and keeps its running value.
    assert "# TYPE ark_bus_messages_in_flight gauge" in lines
    assert 'ark_bus_messages_in_flight{messaging_consumer_group_name="query-reconciler"} 1' in lines
    # Histograms: cumulative buckets, +Inf equal to the count, sum and count.
    assert "# HELP messaging_process_duration_seconds How long" in lines
    assert "# TYPE messaging_process_duration_seconds histogram" in lines
    buckets = [
        line for line in lines if line.startswith("messaging_process_duration_seconds_bucket")
    ]
    counts = [int(line.rsplit(" ", 1)[1]) for line in buckets]
    assert counts == sorted(counts)
    assert buckets[-1] == 'messaging_process_duration_seconds_bucket{le="+Inf"} 3'
    assert 'messaging_process_duration_seconds_bucket{le="0.005"} 1' in lines
    assert "messaging_process_duration_seconds_count 3" in lines
    sums = [line for line in lines if line.startswith("messaging_process_duration_seconds_sum")]
    assert sums
    assert abs(float(sums[0].split(" ")[1]) - 30.204) < 1e-9
    # The resource is one target_info series.
    assert sum(line.startswith("target_info{") for line in lines) == 1
    assert any(
        'service_name="query-reconciler"' in line
        for line in lines
        if line.startswith("target_info")
    )
    # Every family is declared once.
    types = [line.split(" ")[2] for line in lines if line.startswith("# TYPE")]
    assert len(types) == len(set(types))


def test_nothing_collected_renders_an_empty_page() -> None:
    assert render(None) == ""


def test_a_process_that_recorded_nothing_still_says_which_service_it_is() -> None:
    assert PrometheusScrape().exposition() == ""
    page = PrometheusScrape(Resource.create({"service.name": "status-sync"})).exposition()
    assert "# TYPE target_info gauge" in page.splitlines()
    assert 'service_name="status-sync"' in page


@pytest.mark.parametrize(
    ("env", "wanted"),
    [
        ({}, True),
        ({"OTEL_METRICS_EXPORTER": "otlp,prometheus"}, True),
        ({"OTEL_METRICS_EXPORTER": "prometheus"}, True),
        ({"OTEL_METRICS_EXPORTER": "otlp"}, False),
        ({"OTEL_METRICS_EXPORTER": "none"}, False),
        ({"OTEL_SDK_DISABLED": "true"}, False),
    ],
)
def test_the_scrape_page_follows_the_standard_exporter_variable(
    env: dict[str, str], wanted: bool
) -> None:
    assert prometheus_wanted(env) is wanted


def test_an_unknown_exporter_is_a_configuration_error_naming_the_variable() -> None:
    with pytest.raises(TelemetryConfigError) as caught:
        prometheus_wanted({"OTEL_METRICS_EXPORTER": "otlp,statsd"})
    assert "OTEL_METRICS_EXPORTER" in str(caught.value)
