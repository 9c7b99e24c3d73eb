"""Every error becomes an RFC 9457 problem document; each domain error maps to one status here."""

import errno
import re
from collections.abc import Callable
from typing import Any

import asyncpg
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from api.deadlines import DeadlinePassed
from catalog import errors as catalog_errors
from catalog import photos
from exchange import errors as exchange_errors
from ledger import errors as ledger_errors

log = structlog.get_logger()

# The first class in this list that an error is an instance of decides its status.
STATUS_BY_ERROR: list[tuple[type[Exception], int]] = [
    (catalog_errors.InvalidCredentials, 401),
    (catalog_errors.SignInThrottled, 429),
    (catalog_errors.NotFound, 404),
    (catalog_errors.DepartmentNotApproved, 403),
    (catalog_errors.Conflict, 409),
    (catalog_errors.InvalidStatusChange, 409),
    (catalog_errors.InvalidField, 422),
    (catalog_errors.ImportRejected, 422),
    (photos.PhotoTooLarge, 413),
    (photos.PhotoRejected, 415),
    (exchange_errors.NotFound, 404),
    (exchange_errors.NotAMember, 403),
    (exchange_errors.InvalidInput, 422),
    (exchange_errors.IdempotencyKeyMissing, 400),
    (exchange_errors.IdempotencyKeyReused, 409),
    (exchange_errors.ForeignStation, 403),
    (exchange_errors.StationInactive, 409),
    (exchange_errors.NoOpenCampaign, 409),
    (exchange_errors.CampaignOverlap, 409),
    (exchange_errors.UnknownCategory, 422),
    (exchange_errors.CategoryNotRated, 422),
    (exchange_errors.WrongUnit, 422),
    (exchange_errors.QuantityOutOfBounds, 422),
    (exchange_errors.DailyCapReached, 409),
    (exchange_errors.InvalidTransition, 409),
    (exchange_errors.ProductUnavailable, 409),
    (exchange_errors.ShortStock, 409),
    (exchange_errors.ShortPoints, 409),
    (exchange_errors.PickupTokenForeignDepartment, 403),
    (exchange_errors.PickupTokenExpired, 410),
    (exchange_errors.PickupTokenRevoked, 410),
    (exchange_errors.PickupTokenError, 400),  # malformed, forged or altered
    (exchange_errors.AlreadyPickedUp, 409),
    (exchange_errors.SummaryTooLong, 422),
    (ledger_errors.LedgerNotFound, 404),
    (ledger_errors.AccountNotFound, 404),
    (ledger_errors.TransferNotFound, 404),
    (ledger_errors.UnknownKey, 404),
    (ledger_errors.InvalidRequest, 422),
    (ledger_errors.TreeSizeOutOfRange, 422),
    (ledger_errors.UnknownWitness, 403),
    (ledger_errors.CosignatureInvalid, 403),
    (ledger_errors.LedgerError, 409),  # every other ledger rule: a conflict with its state
]


def status_of(error: Exception) -> int:
    for error_type, status in STATUS_BY_ERROR:
        if isinstance(error, error_type):
            return status
    return 400


def domain_problem(error: Exception) -> ProblemDetailsException:
    # The ledger names its errors with stable codes ("ledger.exceeds_credits"); the other
    # packages by their class names.
    extra: dict[str, Any] = {"code": getattr(error, "code", type(error).__name__)}
    if field := getattr(error, "field", None):
        rule = getattr(error, "rule", None) or getattr(error, "message", "")
        extra["errors"] = [{"field": field, "rule": rule}]
    if rows := getattr(error, "errors", None):
        extra["errors"] = rows
    for name in getattr(error, "problem_fields", ()):
        extra[name] = getattr(error, name)
    return ProblemDetailsException(
        status_code=status_of(error),
        title=getattr(error, "title", "Request refused"),
        detail=str(getattr(error, "detail", error)),
        extra=extra,
        headers=getattr(error, "headers", None),  # e.g. Retry-After
    )


def http_problem(error: HTTPException) -> ProblemDetailsException:
    if isinstance(error, ValidationException):
        rows = error.extra if isinstance(error.extra, list) else []
        return ProblemDetailsException(
            status_code=error.status_code,
            title="Invalid request",
            detail=error.detail,
            extra={"errors": [_field_error(row) for row in rows if isinstance(row, dict)]},
            headers=error.headers,
        )
    extra = error.extra if isinstance(error.extra, dict) else None
    return ProblemDetailsException(
        status_code=error.status_code,
        title=_TITLES.get(error.status_code, error.detail),
        detail=error.detail,
        extra=extra,
        headers=error.headers,
    )


_MISSING_FIELD = re.compile(r"missing required field `([^`]+)`")


def _field_error(row: dict[str, Any]) -> dict[str, Any]:
    """msgspec reports a missing field against its parent object; name the field itself."""
    message = str(row.get("message", ""))
    field = row.get("key")
    if missing := _MISSING_FIELD.search(message):
        field = missing.group(1) if field in (None, "data") else f"{field}.{missing.group(1)}"
    return {"field": field, "rule": message, "source": row.get("source")}


_TITLES = {
    401: "Not signed in",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    415: "Unsupported media type",
    429: "Too many requests",
}


# The write may have gone through before the answer was lost: only a retry with the same
# Idempotency-Key is safe, because it answers the original result instead of writing twice.
_RETRY_SAFELY = (
    "Try again shortly, sending the same request with the same Idempotency-Key: if it did go "
    "through, you get the original result and nothing is written twice."
)


def _try_again(request: Request, title: str, detail: str) -> Response[Any]:
    return ProblemDetailsException(
        status_code=503,
        title=title,
        detail=f"{detail} {_RETRY_SAFELY}",
        headers={"Retry-After": "5"},
    ).to_response(request)


def database_unavailable(request: Request, error: Exception) -> Response[Any]:
    log.error(
        "database unavailable", error=str(error).splitlines()[0] if str(error) else repr(error)
    )
    return _try_again(request, "Database unavailable", "The database cannot be reached right now.")


def deadline_passed(request: Request, error: DeadlinePassed) -> Response[Any]:
    """A request that did not finish in time (api/deadlines.py): most likely the database is
    not answering, or the service is overloaded."""
    return _try_again(
        request,
        "Service unavailable",
        f"The request could not be completed within {error.seconds:g} seconds.",
    )


# PostgreSQL's answers that mean "not now" rather than "never": a deadline of ours passed
# (statement_timeout, lock_timeout, idle_in_transaction_session_timeout) or the server is
# shutting down or full.
_RETRYABLE_SQLSTATES = {"57014", "55P03", "25P03", "57P01", "57P02", "57P03", "53300"}


def is_connection_failure(error: BaseException) -> bool:
    """Whether the database could not be reached or did not answer in time, as opposed to a
    bug or a bad statement."""
    # TimeoutError: asyncpg's connect and command timeouts; PoolTimeout: no free connection.
    if isinstance(error, (OperationalError, PoolTimeout, ConnectionError, TimeoutError)):
        return True
    sqlstate = getattr(error, "sqlstate", None) or getattr(
        getattr(error, "orig", None), "sqlstate", None
    )
    if sqlstate in _RETRYABLE_SQLSTATES:
        return True
    if isinstance(
        error,
        asyncpg.PostgresConnectionError
        | asyncpg.CannotConnectNowError
        | asyncpg.TooManyConnectionsError,  # the server is full: as good as unreachable for now
    ):
        return True
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    # asyncpg reports refused connections to several addresses as one plain OSError.
    return isinstance(error, OSError) and (
        error.errno in _NETWORK_ERRNOS or str(error).startswith("Multiple exceptions")
    )


_NETWORK_ERRNOS = {errno.ECONNREFUSED, errno.ECONNRESET, errno.EHOSTUNREACH, errno.ENETUNREACH}


def unexpected_error(request: Request, error: Exception) -> Response[Any]:
    if is_connection_failure(error):
        return database_unavailable(request, error)
    log.exception("unhandled error", path=request.url.path)
    return ProblemDetailsException(
        status_code=500,
        title="Internal error",
        detail="Something went wrong on our side; it has been logged.",
    ).to_response(request)


def problem_details_plugin(domain_errors: list[type[Exception]]) -> ProblemDetailsPlugin:
    mapping: dict[type[Exception], Callable[[Any], ProblemDetailsException]] = {
        HTTPException: http_problem,
        **{error_type: domain_problem for error_type in domain_errors},
    }
    return ProblemDetailsPlugin(ProblemDetailsConfig(exception_to_problem_detail_map=mapping))
