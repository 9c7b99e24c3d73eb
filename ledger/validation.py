"""Checks on the plain values callers pass in, shared by the write paths."""

from __future__ import annotations

from ledger.encoding import MAX_INT
from ledger.errors import InvalidRequest


def check_text(field: str, value: str, max_len: int, *, allow_empty: bool = False) -> None:
    if not isinstance(value, str):
        raise InvalidRequest(field, "must be a string")
    if not value and not allow_empty:
        raise InvalidRequest(field, "must not be empty")
    if len(value) > max_len:
        raise InvalidRequest(field, f"must be at most {max_len} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(field, "must be valid Unicode text") from None


def check_amount(field: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidRequest(field, "must be an integer")
    if not 0 < value <= MAX_INT:
        raise InvalidRequest(field, f"must be between 1 and {MAX_INT}")
