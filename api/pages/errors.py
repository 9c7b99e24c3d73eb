"""How the pages answer errors: a sign-in redirect, or a friendly page — never a stack trace.

Forms catch the domain errors they expect and show them next to the field; whatever
reaches these handlers gets a page in the user's language with a way back.
"""

from typing import Any

import structlog
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
)
from litestar.response import Redirect, Template
from litestar.types import ExceptionHandlersMap

from api.pages.rendering import login_url, page, translator
from api.problems import http_problem, is_connection_failure, status_of

log = structlog.get_logger()

CSRF_FAILURE = "CSRF token verification failed"


def not_signed_in(request: Request[Any, Any, Any], _: Exception) -> Redirect:
    return Redirect(path=login_url(request), status_code=303)


def error_page(request: Request[Any, Any, Any], status: int, title: str, message: str) -> Template:
    return page(request, "error.html", status_code=status, title=title, message=message)


def http_error(request: Request[Any, Any, Any], error: HTTPException) -> Template:
    _ = translator(request).gettext
    if isinstance(error, PermissionDeniedException) and error.detail == CSRF_FAILURE:
        return error_page(
            request,
            403,
            _("This form has expired"),
            _("For your safety the form was not sent. Go back, reload the page and try again."),
        )
    titles = {
        400: _("That request was not understood"),
        403: _("Not allowed"),
        404: _("Not found"),
        405: _("Not allowed"),
        413: _("That file is too large"),
        429: _("Too many attempts"),
    }
    messages = {
        403: _("Your account does not have access to this page."),
        404: _("There is nothing at this address, or it belongs to another department."),
        429: _("Please wait a minute and try again."),
    }
    status = error.status_code
    response = error_page(
        request,
        status,
        titles.get(status, _("That did not work")),
        messages.get(status, _("Please check what you entered and try again.")),
    )
    response.headers.update(error.headers or {})  # e.g. Retry-After on a 429
    return response


def domain_error(request: Request[Any, Any, Any], error: Exception) -> Template:
    _ = translator(request).gettext
    status = status_of(error)
    if status == 404 or type(error).__name__ == "NotFound":
        return http_error(request, NotFoundException())
    return error_page(request, status, _("That did not work"), friendly_message(request, error))


def unexpected_error(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    _ = translator(request).gettext
    if is_connection_failure(error):
        log.error("database unavailable", path=request.url.path)
        return error_page(
            request,
            503,
            _("The service is busy"),
            _("The database cannot be reached right now; try again shortly."),
        )
    log.exception("unhandled error on a page", path=request.url.path)
    return error_page(
        request,
        500,
        _("Something went wrong"),
        _("It is not your fault, and it has been logged. Please try again later."),
    )


def friendly_message(request: Request[Any, Any, Any], error: Exception) -> str:
    """A domain error in the user's language: by its class where known, else its own detail."""
    _ = translator(request).gettext
    known = {
        "InvalidCredentials": _("The username or password is not correct."),
        "DepartmentNotApproved": _("Your department is not approved yet, or it is suspended."),
        "InvalidStatusChange": _(
            "The department cannot change to that status from its current one."
        ),
        "ExceedsCredits": _("You do not have enough points for this."),
        "IdempotencyConflict": _("This form was already sent with different content; reload it."),
        "ForeignStation": _(
            "This collection point belongs to another department; use one of your own."
        ),
        "StationInactive": _("This collection point is not in use any more."),
        "NoOpenCampaign": _(
            "No exchange campaign is open right now, so drop-offs cannot be recorded."
        ),
        "ShortStock": _("Not enough stock left for this order."),
        "ShortPoints": _("You do not have enough spendable points for this."),
        "ProductUnavailable": _("This product is not available any more."),
        "InvalidTransition": _("This is not possible in its current status."),
    }
    for cls in type(error).__mro__:
        if cls.__name__ in known:
            return known[cls.__name__]
    return str(getattr(error, "detail", None) or error)


def exception_handlers(domain_errors: list[type[Exception]]) -> ExceptionHandlersMap:
    return {
        NotAuthorizedException: not_signed_in,
        HTTPException: http_error,
        **dict.fromkeys(domain_errors, domain_error),
        Exception: unexpected_error,
    }


MACHINE_PREFIXES = ("/api/", "/schema", "/health", "/metrics", "/static/")


def address_not_found(request: Request[Any, Any, Any], error: NotFoundException) -> Response[Any]:
    """An address no route serves: a page for people, a problem document for programs."""
    if request.url.path.startswith(MACHINE_PREFIXES):
        return http_problem(error).to_response(request)
    return http_error(request, error)
