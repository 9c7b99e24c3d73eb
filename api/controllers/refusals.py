"""OpenAPI descriptions of the problem documents the exchange's routes answer with."""

import msgspec
from litestar.openapi import ResponseSpec


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
