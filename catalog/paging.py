"""Keyset pagination: a page of rows and the cursor that continues after its last row."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next: str | None
    # Where a listing pages both ways: the cursor for the page before this one, if any.
    prev: str | None = None


def page_of(rows: Sequence[T], limit: int, cursor: Callable[[T], str]) -> Page[T]:
    """`rows` was fetched with limit + 1, so one row too many means there is a next page."""
    items = list(rows[:limit])
    more = len(rows) > limit
    return Page(items=items, next=cursor(items[-1]) if more and items else None)
