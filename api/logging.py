"""structlog for the app and uvicorn: JSON lines (console lines on a terminal), and one line
per request, carrying its request id like every other line logged while it runs.

The JSON lines are encoded by msgspec (installed with Litestar) into bytes written straight to
stderr, and every logger is built once and cached: a request costs one line, not two through
Litestar's logging middleware.
"""

import json
import logging
import sys
import time
import uuid
from typing import Any

import msgspec
import structlog
from litestar.logging.config import LoggingConfig, StructLoggingConfig
from litestar.plugins.structlog import StructlogConfig, StructlogPlugin
from litestar.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = b"x-request-id"

log = structlog.get_logger()


def wants_json(log_format: str) -> bool:
    return log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())


def _json_line(_logger: Any, _name: str, event: structlog.typing.EventDict) -> bytes:
    # Anything msgspec cannot encode natively (an exception, a custom object) is its repr.
    try:
        return msgspec.json.encode(event, enc_hook=repr)
    except (UnicodeEncodeError, TypeError, ValueError):
        # A lone surrogate in some text: the standard library escapes what UTF-8 cannot hold,
        # and a log line must never fail the request that writes it.
        return json.dumps(event, default=repr).encode()


def _json_text(logger: Any, name: str, event: structlog.typing.EventDict) -> str:
    return _json_line(logger, name, event).decode()


def processors(as_json: bool, *, text: bool = False) -> list[structlog.typing.Processor]:
    """The chain every line goes through; `text` renders JSON as str, for the standard
    library's handlers, rather than bytes."""
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if as_json:
        return [*shared, structlog.processors.format_exc_info, _json_text if text else _json_line]
    return [*shared, structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())]


def standard_library_logging(as_json: bool) -> LoggingConfig:
    """Uvicorn's and the libraries' stdlib log records, rendered like our own lines.

    Written straight to stderr, not through Litestar's default queue handler: its listener
    is a daemon thread, and on SIGTERM uvicorn re-raises the signal after shutting down, which
    kills the process before that thread has written the last lines.
    """
    to_stderr = {
        "class": "logging.StreamHandler",
        "formatter": "standard",
        "stream": "ext://sys.stderr",
    }
    return LoggingConfig(
        formatters={
            "standard": {
                "()": structlog.stdlib.ProcessorFormatter,
                "processors": [
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    *processors(as_json, text=True),
                ],
                "foreign_pre_chain": [structlog.stdlib.add_log_level],
            }
        },
        # "queue_listener" is the name Litestar's defaults refer to; here it writes directly.
        handlers={"console": to_stderr, "queue_listener": to_stderr},
    )


def structlog_plugin(log_format: str, level: str) -> StructlogPlugin:
    as_json = wants_json(log_format)
    factory = (
        structlog.BytesLoggerFactory(file=sys.stderr.buffer)
        if as_json
        else structlog.WriteLoggerFactory(file=sys.stderr)
    )
    return StructlogPlugin(
        StructlogConfig(
            structlog_logging_config=StructLoggingConfig(
                standard_lib_logging_config=standard_library_logging(as_json),
                processors=processors(as_json),
                log_exceptions="never",  # unexpected_error logs the 500s; a 4xx needs no traceback
                pretty_print_tty=False,
                logger_factory=factory,
                wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
                cache_logger_on_first_use=True,
            ),
            # RequestLog writes the one line per request.
            enable_middleware_logging=False,
        )
    )


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER:
            incoming = value.decode("latin-1")
            if incoming and incoming.isprintable():
                return incoming[:64]
            break
    return uuid.uuid4().hex


class RequestLog:
    """Around the whole app: gives each HTTP request an id (the client's `X-Request-Id`, or a
    fresh one), binds it to every line logged while the request runs, echoes it in the
    response, and logs one line when the request ends: method, route, status, duration.

    It wraps the app's ASGI handler rather than being a Litestar middleware, because route
    middleware never sees what is answered before a route runs (401 from authentication, 404,
    405), and those requests deserve a line and an id too.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        echo = (REQUEST_ID_HEADER, request_id.encode())
        status: int | None = None

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), echo]
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            # The route's template (/api/orders/{order_id}) once routed; else the path.
            route = scope.get("path_template") or scope["path"]
            duration_ms = round((time.perf_counter() - started) * 1000, 2)
            log.info(
                "request",
                method=scope["method"],
                route=route,
                status=status,
                duration_ms=duration_ms,
            )
