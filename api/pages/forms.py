"""Small helpers for page forms: reading fields, htmx detection."""

from typing import Any

from litestar import Request


def is_htmx(request: Request[Any, Any, Any]) -> bool:
    return request.headers.get("hx-request") == "true"


def text(form: Any, name: str, limit: int = 1000) -> str:
    """A text field as typed, trimmed, and cut at `limit` characters."""
    value = form.get(name, "")
    return str(value).strip()[:limit] if isinstance(value, str) else ""
