"""The one check every request's input passes before a handler sees it (a before_request hook).

- Text no database here can store (`catalog.text`: NUL, lone surrogates) is refused wherever
  it comes from: the path, query parameters, form fields, and JSON keys and values. Uploaded
  files are checked by whoever reads them (CSV in `catalog.members`).
- A JSON body nests at most MAX_JSON_DEPTH deep (deeper would exhaust the decoder's recursion)
  and carries no integer past 64 bits (PostgreSQL's BIGINT).
- An API route refuses a query parameter it does not take, and one it takes once but that was
  sent several times (Litestar would silently ignore the one and keep one value of the other).
- A route that takes JSON answers 415 to a body declared as anything else.
- A JSON body is decoded strictly against the handler's type: `"1"` is not an integer. Litestar
  converts every parameter leniently, which query strings need and JSON bodies do not.
- A JSON body is decoded once: the typed value checked here is what Litestar hands the handler
  (it caches a request's decoded JSON, and converting a value already of the handler's type
  returns it as it is).

Each refusal is a problem document (api/problems.py): 400 naming the field and the rule, or 415.
"""

from typing import Any

import msgspec
from litestar import Request
from litestar.enums import RequestEncodingType
from litestar.exceptions import HTTPException, ValidationException
from litestar.params import BodyKwarg
from litestar.utils.scope.state import ScopeState

from catalog.text import unstorable_character

MAX_JSON_DEPTH = 16  # the deepest request body the API takes nests 3 levels
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
FORMS = (RequestEncodingType.URL_ENCODED, RequestEncodingType.MULTI_PART)


def _error(field: str | None, rule: str, source: str) -> dict[str, Any]:
    # The shape of Litestar's own validation errors, so api/problems.py words both alike.
    return {"key": field, "message": rule, "source": source}


def _text_error(field: str | None, text: str, source: str) -> dict[str, Any] | None:
    if character := unstorable_character(text):
        return _error(field, f"must not contain the character {character}", source)
    return None


async def check_input(request: Request[Any, Any, Any]) -> None:
    errors = [_text_error("path", request.scope["path"], "path")]
    for name, value in request.query_params.multi_items():
        errors += [_text_error(name, name, "query"), _text_error(name, value, "query")]
    errors += _query_errors(request)
    data = request.route_handler.parsed_fn_signature.parameters.get("data")
    media_type = request.content_type[0]
    if (
        data is not None
        and isinstance(data.kwarg_definition, BodyKwarg)
        and data.kwarg_definition.media_type == RequestEncodingType.JSON
    ):
        if request.headers.get("content-type") and not (
            media_type == "application/json" or media_type.endswith("+json")
        ):
            raise HTTPException(
                status_code=415, detail="This route takes a JSON body (application/json)."
            )
        errors += _decode_json(request, await request.body(), data.annotation)
    elif media_type in FORMS:
        for name, value in (await request.form()).multi_items():
            errors.append(_text_error(name, name, "body"))
            if isinstance(value, str):
                errors.append(_text_error(name, value, "body"))
    if found := [error for error in errors if error]:
        raise ValidationException(
            detail=f"Validation failed for {request.method} {request.url.path}", extra=found
        )


# Per route handler: its query parameters (its dependencies' included) and whether each
# takes several values; read from the kwargs model Litestar built for the route.
_QUERY: dict[Any, dict[str, bool]] = {}


def _query_parameters(request: Request[Any, Any, Any]) -> dict[str, bool]:
    handler = request.route_handler
    if handler not in _QUERY:
        for route in request.app.routes:
            for known, kwargs_model in getattr(route, "route_handler_map", {}).values():
                _QUERY[known] = {
                    p.field_alias: p.is_sequence for p in kwargs_model.expected_query_params
                }
    return _QUERY.get(handler, {})


def _query_errors(request: Request[Any, Any, Any]) -> list[dict[str, Any] | None]:
    """An API route refuses a query parameter it does not take (a client's typo would
    otherwise be ignored without a word), and one it takes once but that was sent several
    times (Litestar would keep one of the values)."""
    query = request.query_params
    if not query:
        return []
    taken = _query_parameters(request)
    errors: list[dict[str, Any] | None] = []
    for name in query:
        if name not in taken:
            if request.url.path.startswith("/api/"):
                errors.append(_error(name, "not a parameter of this route", "query"))
        elif not taken[name] and len(query.getall(name)) > 1:
            errors.append(_error(name, "given more than once; send it once", "query"))
    return errors


def _decode_json(
    request: Request[Any, Any, Any], body: bytes, annotation: Any
) -> list[dict[str, Any] | None]:
    """Decodes the body, checks it, and leaves the typed value where Litestar's JSON
    extractor finds it; answers the errors instead when it breaks a rule."""
    if not body:
        return []  # Litestar answers a missing required body itself
    try:
        value = msgspec.json.decode(body)
    except RecursionError:
        return [_error(None, f"JSON nested more than {MAX_JSON_DEPTH} levels deep", "body")]
    except msgspec.DecodeError as error:
        return [_error(None, f"not valid JSON: {error}", "body")]
    errors = _walk(value)
    if errors:
        return errors
    try:
        typed = msgspec.convert(value, type=annotation, strict=True)
    except msgspec.ValidationError as error:
        message, _, at = str(error).partition(" - at `$")
        return [_error(at.rstrip("`").lstrip(".") or None, message, "body")]
    ScopeState.from_scope(request.scope).json = typed
    return []


def _walk(value: Any) -> list[dict[str, Any] | None]:
    """Depth, characters and integer range of a decoded JSON value; iterative, so no depth
    can exhaust the stack."""
    stack: list[tuple[Any, int, str]] = [(value, 1, "")]
    while stack:
        item, depth, where = stack.pop()
        field = where.lstrip(".") or None
        if depth > MAX_JSON_DEPTH:
            return [_error(None, f"JSON nested more than {MAX_JSON_DEPTH} levels deep", "body")]
        if isinstance(item, str):
            if error := _text_error(field, item, "body"):
                return [error]
        elif isinstance(item, int) and not isinstance(item, bool):
            if not INT64_MIN <= item <= INT64_MAX:
                return [_error(field, "an integer that fits in 64 bits", "body")]
        elif isinstance(item, dict):
            for key, member in item.items():
                if error := _text_error(field, key, "body"):  # a key names its object
                    return [error]
                stack.append((member, depth + 1, f"{where}.{key}"))
        elif isinstance(item, list):
            stack.extend((member, depth + 1, f"{where}[{i}]") for i, member in enumerate(item))
    return []
