"""Small helpers for page forms: reading fields, htmx detection."""

from typing import Any

from litestar import Request
from sqlmodel.ext.asyncio.session import AsyncSession


def is_htmx(request: Request[Any, Any, Any]) -> bool:
    return request.headers.get("hx-request") == "true"


def text(form: Any, name: str, limit: int = 1000) -> str:
    """A text field as typed, trimmed, and cut at `limit` characters."""
    value = form.get(name, "")
    return str(value).strip()[:limit] if isinstance(value, str) else ""


def savepoint(db: AsyncSession) -> Any:
    """Wrap a domain write whose refusal the page shows in the form.

    The request's transaction commits when the handler returns normally, so a refusal that
    is caught and rendered must first undo whatever the domain call wrote before refusing
    (e.g. stock taken before the points turned out short): the savepoint rolls that back.
    """
    return db.begin_nested()
