"""Sign-in: short-lived JWTs, as a bearer token for the API and an HTTP-only cookie for pages.

A cookie never authenticates a write to /api: that would let another site post on the
user's behalf. Page forms are covered by the CSRF middleware instead.
"""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AuthenticationResult
from litestar.security.jwt import JWTCookieAuth, JWTCookieAuthenticationMiddleware, Token

from api.db import transaction
from catalog.identity import Identity, is_revoked, load_identity
from catalog.models import Role

COOKIE_NAME = "exchange_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC_PATHS = [
    "^/$",
    "^/schema",
    "^/health",
    "^/metrics",
    "^/static/",
    "^/api/keys",
    "^/api/auth/token",
]


class ExchangeAuthMiddleware(JWTCookieAuthenticationMiddleware):
    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        api_write = (
            connection.url.path.startswith("/api/")
            and connection.scope["method"] not in SAFE_METHODS
        )
        if api_write and not connection.headers.get(self.auth_header):
            raise NotAuthorizedException("Writes to the API need an Authorization: Bearer token.")
        return await super().authenticate_request(connection)


async def retrieve_identity(
    token: Token, connection: ASGIConnection[Any, Any, Any, Any]
) -> Identity | None:
    async with transaction(connection.app.state.session_factory) as session:
        return await load_identity(session, token.sub)


async def token_revoked(token: Token, connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    if not token.jti:
        return True
    async with transaction(connection.app.state.session_factory) as session:
        return await is_revoked(session, token.jti)


def create_auth(secret: str, minutes: int, secure_cookies: bool) -> JWTCookieAuth[Identity, Token]:
    return JWTCookieAuth[Identity, Token](
        retrieve_user_handler=retrieve_identity,
        revoked_token_handler=token_revoked,
        token_secret=secret,
        default_token_expiration=timedelta(minutes=minutes),
        key=COOKIE_NAME,
        samesite="lax",  # "strict" would drop the cookie when a phone opens a poster's QR link
        secure=secure_cookies,
        exclude=PUBLIC_PATHS,
        authentication_middleware_class=ExchangeAuthMiddleware,
    )


Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], None]


def requires(*roles: Role) -> Guard:
    """A guard letting through callers holding at least one of `roles`."""

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        identity: Identity = connection.user
        if not identity.has(*roles):
            names = ", ".join(role.value for role in roles)
            raise PermissionDeniedException(f"This needs one of these roles: {names}.")

    return guard


async def optional_identity(connection: ASGIConnection[Any, Any, Any, Any]) -> Identity | None:
    """The caller of a route open to everyone, if they sent a valid bearer token."""
    auth: JWTCookieAuth[Identity, Token] = connection.app.state.auth
    header = connection.headers.get(auth.auth_header, "")
    if not header:
        return None
    try:
        token = Token.decode(header.partition(" ")[-1], auth.token_secret, auth.algorithm)
    except NotAuthorizedException:
        return None
    if await token_revoked(token, connection):
        return None
    return await retrieve_identity(token, connection)


def member_department(caller: Identity, what: str) -> str:
    """The caller's department, where `what` (e.g. "Orders") exists only inside one."""
    if caller.department_id is None:
        raise PermissionDeniedException(f"{what} belong to a department; sign in as its member.")
    return caller.department_id
