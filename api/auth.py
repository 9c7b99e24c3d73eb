"""Sign-in: short-lived JWTs, as a bearer token for the API and an HTTP-only cookie for pages.

A cookie never authenticates a write to /api: that would let another site post on the
user's behalf. Page forms are covered by the CSRF middleware instead.

A token's signature and claims are checked once and the verified token remembered by its text
(`TokenVerifier`); who its subject is (department, roles) and that the token is not revoked is
read from the database and then remembered for a few seconds (`IdentityCache`), so that a
request neither verifies its token again nor loads its caller on every call.
"""

import functools
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AuthenticationResult
from litestar.security.jwt import JWTCookieAuth, JWTCookieAuthenticationMiddleware, Token
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.dml import UpdateBase

from api import db
from catalog.identity import Caller, Identity, load_caller
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

    async def authenticate_token(
        self, encoded_token: str, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        # Litestar's own decodes the token on every request; the app's verifier remembers it.
        token = connection.app.state.token_verifier(encoded_token)
        if not (identity := await self.retrieve_user_handler(token, connection)):
            raise NotAuthorizedException()
        return AuthenticationResult(user=identity, auth=token)


TOKEN_CACHE_LIMIT = 20_000


class TokenVerifier:
    """A bearer token's signature and claims (PyJWT), checked once and then remembered by the
    token's exact text, least recently used out first past `limit` tokens.

    `exp` is checked again on every use against `clock`, so a remembered token is refused once
    it expires; revocation is checked on every request by the caller's load (`IdentityCache`).
    A token that fails verification is not remembered.
    """

    def __init__(self, secret: str, algorithm: str, limit: int = TOKEN_CACHE_LIMIT) -> None:
        self.clock = time.time

        def verify(encoded: str) -> tuple[Token, float]:
            token = Token.decode(encoded, secret, algorithm)
            return token, token.exp.timestamp()

        self._verified = functools.lru_cache(maxsize=limit)(verify)

    def __call__(self, encoded: str) -> Token:
        token, expires = self._verified(encoded)
        if expires <= self.clock():
            raise NotAuthorizedException("Invalid token")  # expired since it was verified
        return token


# Writes to these tables can change who a signed-in caller is or end their token.
IDENTITY_TABLES = frozenset({"users", "user_roles", "departments", "revoked_tokens"})
CACHE_LIMIT = 100_000


class IdentityCache:
    """Whether each token is revoked and the identity behind it (None: the user is gone or
    cannot sign in), remembered for `ttl` seconds; 0 turns the cache off.

    Within one process it is exact: every committed write to IDENTITY_TABLES through the
    app's engine (logout, role or department status changes, ...) empties it once the
    connection is back in the pool, i.e. after the commit, and a load that overlapped such
    a write is not kept (the generation check). Revocations live in the database, so other
    processes (workers, instances) honour a logout or a role change once their entry
    expires: within `ttl` seconds.
    """

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[tuple[str, str], tuple[float, Caller]] = {}
        self._generation = 0
        self.clock = time.monotonic

    @property
    def generation(self) -> int:
        return self._generation

    def get(self, jti: str, sub: str) -> Caller | None:
        entry = self._entries.get((jti, sub))
        if entry is None or entry[0] <= self.clock():
            return None
        return entry[1]

    def put(self, jti: str, sub: str, caller: Caller, generation: int) -> None:
        if self.ttl <= 0 or generation != self._generation:
            return  # the tables changed while this was being loaded: do not keep it
        if len(self._entries) >= CACHE_LIMIT:
            self._entries.clear()
        self._entries[(jti, sub)] = (self.clock() + self.ttl, caller)

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()

    def watch(self, engine: AsyncEngine) -> None:
        """Empty the cache after every committed write to IDENTITY_TABLES on `engine`."""

        def after_execute(conn: Any, statement: Any, *_: Any) -> None:
            table = getattr(statement, "table", None)
            if isinstance(statement, UpdateBase) and getattr(table, "name", None) in (
                IDENTITY_TABLES
            ):
                conn.info["identity_changed"] = True

        def checkin(_dbapi_connection: Any, record: Any) -> None:
            if record.info.pop("identity_changed", False):
                self.clear()

        event.listen(engine.sync_engine, "after_execute", after_execute)
        event.listen(engine.sync_engine.pool, "checkin", checkin)


async def _caller(token: Token, connection: ASGIConnection[Any, Any, Any, Any]) -> Caller:
    cache: IdentityCache = connection.app.state.identity_cache
    jti = token.jti or ""
    if (caller := cache.get(jti, token.sub)) is not None:
        return caller
    generation = cache.generation
    async with db.connection(connection.app.state.engine) as conn:
        caller = await load_caller(conn, jti, token.sub)
    cache.put(jti, token.sub, caller, generation)
    return caller


async def signed_in(
    token: Token, connection: ASGIConnection[Any, Any, Any, Any]
) -> Identity | None:
    """The identity behind a verified token, unless the token is revoked (or carries no id to
    revoke it by) or its user can no longer sign in."""
    if not token.jti:
        return None
    caller = await _caller(token, connection)
    return None if caller.revoked else caller.identity


def create_auth(secret: str, minutes: int, secure_cookies: bool) -> JWTCookieAuth[Identity, Token]:
    return JWTCookieAuth[Identity, Token](
        retrieve_user_handler=signed_in,
        token_secret=secret,
        default_token_expiration=timedelta(minutes=minutes),
        key=COOKIE_NAME,
        samesite="lax",  # "strict" would drop the cookie when a phone opens a poster's QR link
        secure=secure_cookies,
        exclude=PUBLIC_PATHS,
        authentication_middleware_class=ExchangeAuthMiddleware,
    )


Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Awaitable[None]]


def requires(*roles: Role) -> Guard:
    """A guard letting through callers holding at least one of `roles`. A coroutine: Litestar
    runs a plain function guard on a worker thread, a hop on every request."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        identity: Identity = connection.user
        if not identity.has(*roles):
            names = ", ".join(role.value for role in roles)
            raise PermissionDeniedException(f"This needs one of these roles: {names}.")

    return guard


async def optional_identity(connection: ASGIConnection[Any, Any, Any, Any]) -> Identity | None:
    """The caller of a route open to everyone, if they sent a valid bearer token."""
    state = connection.app.state
    header = connection.headers.get(state.auth.auth_header, "")
    if not header:
        return None
    try:
        token = state.token_verifier(header.partition(" ")[-1])
    except NotAuthorizedException:
        return None
    return await signed_in(token, connection)


def member_department(caller: Identity, what: str) -> str:
    """The caller's department, where `what` (e.g. "Orders") exists only inside one."""
    if caller.department_id is None:
        raise PermissionDeniedException(f"{what} belong to a department; sign in as its member.")
    return caller.department_id
