"""structlog for the app and uvicorn: console lines on a terminal, JSON otherwise, request ids."""

import logging
import sys
import uuid

import structlog
from litestar.enums import ScopeType
from litestar.logging.config import LoggingConfig, StructLoggingConfig
from litestar.middleware import ASGIMiddleware
from litestar.middleware.logging import LoggingMiddlewareConfig
from litestar.plugins.structlog import StructlogConfig, StructlogPlugin
from litestar.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "x-request-id"


def wants_json(log_format: str) -> bool:
    return log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())


def processors(as_json: bool) -> list[structlog.typing.Processor]:
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if as_json:
        return [*shared, structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
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
                    *processors(as_json),
                ],
                "foreign_pre_chain": [structlog.stdlib.add_log_level],
            }
        },
        # "queue_listener" is the name Litestar's defaults refer to; here it writes directly.
        handlers={"console": to_stderr, "queue_listener": to_stderr},
    )


def structlog_plugin(log_format: str, level: str) -> StructlogPlugin:
    as_json = wants_json(log_format)
    return StructlogPlugin(
        StructlogConfig(
            structlog_logging_config=StructLoggingConfig(
                standard_lib_logging_config=standard_library_logging(as_json),
                processors=processors(as_json),
                log_exceptions="never",  # unexpected_error logs the 500s; a 4xx needs no traceback
                pretty_print_tty=False,
                logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
                wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
            ),
            middleware_logging_config=LoggingMiddlewareConfig(
                request_log_fields=("path", "method", "query"),
                response_log_fields=("status_code",),
            ),
        )
    )


class RequestIdMiddleware(ASGIMiddleware):
    """Binds a request id to every log line of the request and echoes it in the response."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        incoming = dict(scope["headers"]).get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        request_id = incoming[:64] if incoming.isprintable() and incoming else uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message["headers"] = headers  # type: ignore[typeddict-unknown-key]
            await send(message)

        await next_app(scope, receive, send_with_id)
