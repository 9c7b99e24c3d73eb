"""OpenAPI descriptions of the problem documents the exchange's routes answer with.

A handler names the refusals particular to it with `responses=refusals(...)`;
`document_refusals` adds, in this one place, those that follow from how a route is built
(its input, sign-in, path ids, writes, the database), so no route leaves one out.
"""

import re
from typing import TYPE_CHECKING

import msgspec
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec
from litestar.params import ParameterKwarg
from litestar.routes import HTTPRoute

from api.auth import PUBLIC_PATHS

if TYPE_CHECKING:
    from litestar import Litestar


class Problem(msgspec.Struct):
    """An RFC 9457 problem document; some carry further fields named in their description."""

    status: int
    title: str
    detail: str
    code: str | None = None
    errors: list[dict[str, object]] | None = None


def refusals(**by_status: str) -> dict[int, ResponseSpec]:
    """`refusals(_409="Not enough stock; Not enough points")` → documented problem answers."""
    return {
        int(status.lstrip("_")): ResponseSpec(
            data_container=Problem,
            description=description,
            media_type="application/problem+json",
            generate_examples=False,
        )
        for status, description in by_status.items()
    }


INVALID = (
    "Invalid request: a parameter or field breaks a rule (`errors` names which), "
    "or the body is not the JSON the route takes"
)
NOT_SIGNED_IN = "Not signed in: no token, or it expired or was revoked"
NOT_ALLOWED = "The caller's roles do not allow this, or the caller's department is not approved"
NOT_FOUND = "Not found (objects of another department are indistinguishable from missing ones)"
CONFLICT = "Refused by the current state (the title and `code` say which rule)"
UNPROCESSABLE = "A value breaks a business rule (`errors` names the field and the rule)"
UNSUPPORTED = "The body is not of the media type the route takes"
UNAVAILABLE = (
    "Database unavailable, or the request passed its deadline; retry after `Retry-After` "
    "seconds with the same request"
)
WRITES = {"POST", "PUT", "PATCH", "DELETE"}


NOT_INPUT = {"request", "db", "state", "scope", "headers", "cookies"}


def _takes_input(route: HTTPRoute, handler: HTTPRouteHandler) -> bool:
    """Whether the handler reads a body or query parameters, where business rules apply."""
    path_parameters = set(route.path_parameters)  # a dict keyed by name
    for parameter in handler.parsed_fn_signature.parameters.values():
        kwarg = parameter.kwarg_definition
        if parameter.name in NOT_INPUT or parameter.name in path_parameters:
            continue
        if isinstance(kwarg, ParameterKwarg) and (kwarg.header or kwarg.cookie):
            continue
        return True
    return False


def _public(route: HTTPRoute) -> bool:
    return any(re.match(pattern, route.path) for pattern in PUBLIC_PATHS)


def document_refusals(app: "Litestar") -> None:
    """Adds the refusals every API route can give by its make-up to its own `responses` (a
    handler's own description of a status wins), and marks the routes anyone may call.
    Runs before the schema is first built."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            if not handler.resolve_include_in_schema():
                continue
            if _public(route):
                handler.security = [{}]  # no sign-in needed, whatever the app's default says
            elif handler.opt.get("exclude_from_auth"):
                handler.security = [{}, {"BearerToken": []}]  # signed in or not
            takes_input = _takes_input(route, handler)
            implied = {"_400": INVALID}  # any request may carry unstorable text (api/boundary.py)
            if not _public(route):
                implied |= {"_401": NOT_SIGNED_IN, "_403": NOT_ALLOWED}
            implied["_503"] = UNAVAILABLE  # any request may pass its deadline (api/deadlines.py)
            if "{" in route.path:
                implied["_404"] = NOT_FOUND
            if handler.http_methods & WRITES and not _public(route):
                implied["_409"] = CONFLICT
            if takes_input:
                implied["_422"] = UNPROCESSABLE
            if "data" in handler.parsed_fn_signature.parameters:
                implied["_415"] = UNSUPPORTED
            handler.responses = {**refusals(**implied), **(handler.responses or {})}
