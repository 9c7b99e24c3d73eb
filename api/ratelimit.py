"""Per-address rate limits on the routes that cost a password hash: sign-in and applications.

Counted in the database (catalog/throttle.py), not in a process, so several workers and
instances enforce one limit together. The address is the peer's, as uvicorn reports it:
X-Forwarded-For counts only from the proxies in EXCHANGE_TRUSTED_PROXIES.
"""

from dataclasses import dataclass
from typing import Any

import structlog
from litestar.connection import ASGIConnection
from litestar.exceptions import TooManyRequestsException

from api.db import transaction
from catalog import throttle
from catalog.models import utcnow

log = structlog.get_logger()


@dataclass(frozen=True)
class Limit:
    name: str
    requests: int
    seconds: int


def sign_in_limit(connection: ASGIConnection[Any, Any, Any, Any]) -> Limit:
    return Limit("sign-in", connection.app.state.settings.login_attempts_per_minute, 60)


def application_limit(connection: ASGIConnection[Any, Any, Any, Any]) -> Limit:
    return Limit("application", connection.app.state.settings.applications_per_hour, 3600)


async def enforce(connection: ASGIConnection[Any, Any, Any, Any], limit: Limit) -> None:
    """Counts this request; past the limit, a 429 saying when to try again (Retry-After)."""
    client = connection.client.host if connection.client else "unknown"
    async with transaction(connection.app.state.session_factory) as session:
        hits, retry_after = await throttle.hit(
            session, f"{limit.name}:{client}", limit.seconds, utcnow()
        )
    if hits > limit.requests:
        log.warning("rate limited", limit=limit.name, client=client, hits=hits)
        raise TooManyRequestsException(
            detail=f"Too many attempts from this address; try again in {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
        )
