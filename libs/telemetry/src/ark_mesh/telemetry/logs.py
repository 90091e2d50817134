"""structlog set up once, identically, for every ark-mesh process.

Every line carries the same context keys so one query can be followed across services by
grepping (or querying) a single field: ``tenant`` and ``query_id`` are bound through
contextvars by whoever knows them (the worker runtime binds what the subject tells it), and
``trace_id`` / ``span_id`` are read from the active OpenTelemetry span at the moment the line is
written, so logs and traces join without anyone binding ids by hand.

The pipeline is a list of plain callables (structlog processors) so a service can append its own
and tests can run the same pipeline without rendering (:func:`ark_mesh.telemetry.testing.capture_logs`).
Records from the standard :mod:`logging` module (nats-py, aiohttp, asyncio) go through the same
processors and renderer, so a process never mixes two log formats.

Selection (environment, overridable by arguments):

``ARK_LOG_FORMAT``  ``json`` (default; one JSON object per line, for collectors) or ``console``
                    (coloured, aligned, for a developer's terminal).
``ARK_LOG_LEVEL``   ``debug``, ``info`` (default), ``warning``, ``error``, ``critical``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from enum import StrEnum
from typing import Any, Final, TextIO

import msgspec
import structlog
from opentelemetry import trace
from structlog._config import BoundLoggerLazyProxy
from structlog.typing import EventDict, Processor, WrappedLogger

from ark_mesh.telemetry.errors import TelemetryConfigError

__all__ = [
    "FORMAT_ENV",
    "LEVEL_ENV",
    "LogFormat",
    "add_trace_context",
    "bind_context",
    "bound_context",
    "configure_logging",
    "context_processors",
    "get_logger",
    "unbind_context",
]

FORMAT_ENV: Final = "ARK_LOG_FORMAT"
LEVEL_ENV: Final = "ARK_LOG_LEVEL"

_LEVELS: Final[Mapping[str, int]] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


class LogFormat(StrEnum):
    JSON = "json"
    CONSOLE = "console"


def add_trace_context(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Processor: add ``trace_id`` and ``span_id`` (W3C hex) of the active span, if any.

    Explicitly bound values win, so a line about *another* trace (e.g. a dead-lettered message)
    can say so.
    """
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict.setdefault("trace_id", format(context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(context.span_id, "016x"))
    return event_dict


def _add_service(service: str) -> Processor:
    def add_service(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("service", service)
        return event_dict

    return add_service


def context_processors() -> list[Processor]:
    """The processors that *enrich* an event (no rendering): contextvars, level, trace ids.

    Shared by the real pipeline and by :func:`~ark_mesh.telemetry.testing.capture_logs`, so a
    test sees exactly the keys production lines carry.
    """
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        add_trace_context,
    ]


def _json_serializer(obj: Any, **_: Any) -> str:
    # msgspec is already on every service's path and is several times faster than json.dumps;
    # unknown objects are logged by their str() rather than crashing the log call.
    return msgspec.json.encode(obj, enc_hook=str).decode()


def _parse_format(value: str | LogFormat | None) -> LogFormat:
    raw = value if value is not None else os.environ.get(FORMAT_ENV, LogFormat.JSON)
    try:
        return LogFormat(str(raw).lower())
    except ValueError:
        raise TelemetryConfigError(FORMAT_ENV, raw, "one of: json, console") from None


def _parse_level(value: str | int | None) -> int:
    if isinstance(value, int):
        return value
    raw = value if value is not None else os.environ.get(LEVEL_ENV, "info")
    try:
        return _LEVELS[raw.lower()]
    except KeyError:
        raise TelemetryConfigError(LEVEL_ENV, raw, f"one of: {', '.join(_LEVELS)}") from None


def configure_logging(
    service: str,
    *,
    log_format: str | LogFormat | None = None,
    level: str | int | None = None,
    stream: TextIO | None = None,
    extra_processors: list[Processor] | None = None,
) -> LogFormat:
    """Configure structlog and the standard library's root logger for this process.

    Safe to call again (e.g. by a test, or a service re-reading its settings): the previous
    handler installed by this function is replaced, never duplicated. Returns the format chosen.
    """
    chosen = _parse_format(log_format)
    threshold = _parse_level(level)
    output = stream if stream is not None else sys.stderr

    enrich: list[Processor] = [
        *context_processors(),
        _add_service(service),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        *(extra_processors or []),
    ]
    renderer: Processor
    if chosen is LogFormat.JSON:
        renderer = structlog.processors.JSONRenderer(serializer=_json_serializer)
        finishing: list[Processor] = [
            structlog.processors.StackInfoRenderer(),
            structlog.processors.dict_tracebacks,
        ]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=output.isatty())
        finishing = [structlog.processors.StackInfoRenderer()]

    structlog.configure(
        processors=[*enrich, *finishing, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.PrintLoggerFactory(output),
        cache_logger_on_first_use=True,
    )

    # Library records (nats-py reconnect notices, aiohttp access logs) get the same treatment.
    handler = logging.StreamHandler(output)
    handler.set_name("ark-mesh")
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *enrich],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *finishing,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == "ark-mesh":
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(threshold)
    return chosen


def get_logger(name: str | None = None, **initial: Any) -> Any:
    """A structlog logger; ``name`` becomes the ``logger`` key (use ``__name__``)."""
    if name is not None:
        initial["logger"] = name
    # A lazy proxy, so module-level loggers pick up configure_logging() however early they
    # were created; built directly because ``logger`` collides with get_logger's parameter.
    return BoundLoggerLazyProxy(None, initial_values=initial, logger_factory_args=())


def bind_context(**values: Any) -> None:
    """Bind keys (``tenant``, ``query_id``, …) for every later line in this task/context."""
    structlog.contextvars.bind_contextvars(**values)


def unbind_context(*keys: str) -> None:
    structlog.contextvars.unbind_contextvars(*keys)


@contextlib.contextmanager
def bound_context(**values: Any) -> Iterator[None]:
    """Bind keys for the duration of a block and restore the previous values afterwards.

    ``None`` values are skipped, so callers can pass optional ids without branching.
    """
    present = {key: value for key, value in values.items() if value is not None}
    with structlog.contextvars.bound_contextvars(**present):
        yield
