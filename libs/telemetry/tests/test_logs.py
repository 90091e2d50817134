"""Logging: one pipeline, JSON or console, context on every line, stdlib records included."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from opentelemetry.sdk.trace import TracerProvider

from ark_mesh.telemetry import (
    TelemetryConfigError,
    bind_context,
    bound_context,
    configure_logging,
    get_logger,
    unbind_context,
)
from ark_mesh.telemetry.testing import capture_logs


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == "ark-mesh":
            root.removeHandler(handler)


def _lines(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def test_json_lines_carry_bound_context_and_service() -> None:
    out = io.StringIO()
    configure_logging("query-reconciler", log_format="json", level="info", stream=out)
    log = get_logger("test")
    with bound_context(tenant="acme", query_id="q-1", unused=None):
        log.info("resolving", step=1)
    log.info("outside")
    log.debug("filtered out by level")

    first, second = _lines(out)
    assert first["event"] == "resolving"
    assert first["tenant"] == "acme"
    assert first["query_id"] == "q-1"
    assert first["service"] == "query-reconciler"
    assert first["level"] == "info"
    assert first["step"] == 1
    assert "unused" not in first
    assert "timestamp" in first
    assert "tenant" not in second


def test_trace_and_span_ids_come_from_the_active_span() -> None:
    out = io.StringIO()
    configure_logging("svc", log_format="json", stream=out)
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        get_logger().info("inside span")
        context = span.get_span_context()
    (line,) = _lines(out)
    assert line["trace_id"] == format(context.trace_id, "032x")
    assert line["span_id"] == format(context.span_id, "016x")


def test_stdlib_records_use_the_same_renderer() -> None:
    out = io.StringIO()
    configure_logging("svc", log_format="json", stream=out)
    bind_context(tenant="t9")
    logging.getLogger("nats.aio.client").warning("reconnecting to %s", "nats://x")
    unbind_context("tenant")
    (line,) = _lines(out)
    assert line["event"] == "reconnecting to nats://x"
    assert line["logger"] == "nats.aio.client"
    assert line["tenant"] == "t9"
    assert line["service"] == "svc"


def test_configuring_twice_does_not_duplicate_output() -> None:
    out = io.StringIO()
    configure_logging("svc", log_format="json", stream=out)
    configure_logging("svc", log_format="json", stream=out)
    logging.getLogger("lib").warning("once")
    assert len(_lines(out)) == 1


def test_console_format_is_human_readable(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setenv("ARK_LOG_FORMAT", "console")
    chosen = configure_logging("svc", stream=out)
    get_logger().warning("disk almost full", free="1%")
    text = out.getvalue()
    assert chosen == "console"
    assert "disk almost full" in text
    assert "free=1%" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


@pytest.mark.parametrize(
    ("variable", "value"), [("ARK_LOG_FORMAT", "xml"), ("ARK_LOG_LEVEL", "loud")]
)
def test_bad_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(TelemetryConfigError, match=variable) as caught:
        configure_logging("svc", stream=io.StringIO())
    assert caught.value.value == value


def test_capture_logs_keeps_context_keys() -> None:
    configure_logging("svc", log_format="json", stream=io.StringIO())
    log = get_logger("x")
    with capture_logs() as entries, bound_context(tenant="acme", query_id="q-7"):
        log.warning("slow model", seconds=12)
    (entry,) = entries
    assert entry["event"] == "slow model"
    assert entry["log_level"] == "warning"
    assert entry["tenant"] == "acme"
    assert entry["query_id"] == "q-7"
    assert entry["seconds"] == 12
