"""Sign in, sign out, and who am I."""

import secrets
from dataclasses import asdict
from datetime import UTC
from typing import Annotated, Any

import msgspec
import structlog
from litestar import Controller, Request, Response, get, post
from litestar.params import JSONBody
from litestar.security.jwt import Token

from api.auth import COOKIE_NAME
from api.controllers.refusals import refusals
from api.params import DB
from api.ratelimit import enforce, sign_in_limit
from catalog.errors import InvalidCredentials
from catalog.identity import Identity, authenticate, revoke_token
from catalog.lockout import LockoutPolicy
from catalog.models import Department, User
from exchange.points import points_of

log = structlog.get_logger()


class Credentials(msgspec.Struct):
    username: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class AccessToken(msgspec.Struct):
    access_token: str
    token_type: str
    expires_in: int


class DepartmentRef(msgspec.Struct):
    id: str
    name: str
    status: str


class Balance(msgspec.Struct):
    """Points: `available` to spend; `pending_credit` awaiting a steward (not spendable yet);
    `held` by open orders until pickup or cancellation."""

    available: int
    pending_credit: int
    held: int


class Me(msgspec.Struct):
    id: str
    username: str
    display_name: str
    roles: list[str]
    department: DepartmentRef | None
    language: str | None
    balance: Balance | None = None  # None for platform-wide staff


async def sign_in(request: Request[Any, Any, Any], username: str, password: str) -> User:
    """The user, or InvalidCredentials (logged) for every refusal: wrong, unknown, locked.

    Not in the request's transaction: a refusal must still commit the failure it counts.
    """
    await enforce(request, sign_in_limit(request))
    settings = request.app.state.settings
    policy = LockoutPolicy(settings.login_lockout_failures, settings.login_lockout_seconds)
    try:
        return await authenticate(request.app.state.session_factory, username, password, policy)
    except InvalidCredentials:
        client = request.client.host if request.client else None
        log.warning("login failed", username=username, client=client, path=request.url.path)
        raise


class AuthController(Controller):
    path = "/api"
    tags = ["Authentication"]

    @post(
        "/auth/token",
        status_code=200,
        summary="Sign in; also sets the session cookie for pages",
        responses=refusals(
            _401="Wrong username or password",
            _429="Too many sign-in attempts from this address; try again in a minute",
        ),
    )
    async def token(
        self, request: Request[Any, Any, Any], data: JSONBody[Credentials]
    ) -> Response[AccessToken]:
        user = await sign_in(request, data.username, data.password)
        auth = request.app.state.auth
        seconds = int(auth.default_token_expiration.total_seconds())
        encoded = auth.create_token(user.id, token_unique_jwt_id=secrets.token_hex(16))
        log.info("login", user_id=user.id)
        response = Response(AccessToken(encoded, "bearer", seconds), status_code=200)
        response.set_cookie(
            key=COOKIE_NAME,
            value=encoded,
            max_age=seconds,
            httponly=True,
            samesite=auth.samesite,
            secure=auth.secure,
        )
        return response

    @post("/auth/logout", status_code=204, summary="Revoke the current token")
    async def logout(self, request: Request[Identity, Token, Any], db: DB) -> Response[None]:
        token = request.auth
        if token.jti:
            await revoke_token(db, token.jti, token.exp.astimezone(UTC))
        response: Response[None] = Response(None, status_code=204)
        response.delete_cookie(COOKIE_NAME)
        return response

    @get("/me", summary="The signed-in user, department, roles and balance")
    async def me(self, request: Request[Identity, Token, Any], db: DB) -> Me:
        identity = request.user
        department = (
            await db.get(Department, identity.department_id) if identity.department_id else None
        )
        return Me(
            id=identity.user_id,
            username=identity.username,
            display_name=identity.display_name,
            roles=sorted(role.value for role in identity.roles),
            department=DepartmentRef(department.id, department.name, department.status)
            if department
            else None,
            language=identity.language,
            balance=Balance(**asdict(await points_of(db, department.id, identity.user_id)))
            if department
            else None,
        )
