"""Sign-in: short-lived JWTs, as a bearer token for the API and an HTTP-only cookie for pages.

A cookie never authenticates a write to /api: that would let another site post on the
user's behalf. Page forms are covered by the CSRF middleware instead.

Who a token's subject is (department, roles) and that the token is not revoked is read from
the database and then remembered for a few seconds (`IdentityCache`), so that a request does
not load its caller on every call.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Caller:
    revoked: bool
    identity: Identity | None  # None: the user is gone or cannot sign in


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
    async with transaction(connection.app.state.session_factory) as session:
        if await is_revoked(session, jti):
            caller = Caller(revoked=True, identity=None)
        else:
            caller = Caller(revoked=False, identity=await load_identity(session, token.sub))
    cache.put(jti, token.sub, caller, generation)
    return caller


async def retrieve_identity(
    token: Token, connection: ASGIConnection[Any, Any, Any, Any]
) -> Identity | None:
    return (await _caller(token, connection)).identity


async def token_revoked(token: Token, connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    return not token.jti or (await _caller(token, connection)).revoked


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
