"""Sign in, sign out, and who am I."""

import secrets
from dataclasses import asdict, dataclass
from datetime import UTC
from typing import Annotated, Any

import msgspec
import structlog
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.params import JSONBody
from litestar.security.jwt import Token

from api.auth import COOKIE_NAME
from api.controllers.refusals import refusals
from api.devices import client_of, device_cookie
from api.params import DB
from api.ratelimit import enforce, sign_in_limit
from catalog.errors import InvalidCredentials, SignInThrottled
from catalog.identity import Identity, revoke_token
from catalog.lockout import Client, LockoutPolicy
from catalog.models import Department, User
from catalog.signin import authenticate
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


@dataclass(frozen=True)
class SignedIn:
    user: User
    client: Client


async def sign_in(request: Request[Any, Any, Any], username: str, password: str) -> SignedIn:
    """The user, or InvalidCredentials (logged) for every refusal: wrong, unknown, locked; or
    SignInThrottled (logged) when the account's soft limit holds unknown clients back.

    Not in the request's transaction: a refusal must still commit the failure it counts.
    """
    await enforce(request, sign_in_limit(request))
    settings = request.app.state.settings
    policy = LockoutPolicy(
        settings.login_lockout_failures,
        settings.login_lockout_seconds,
        account_attempts_per_minute=settings.login_account_attempts_per_minute,
    )
    client = client_of(request)
    try:
        user = await authenticate(
            request.app.state.session_factory, username, password, client, policy
        )
    except (InvalidCredentials, SignInThrottled) as refusal:
        log.warning(
            "login failed" if isinstance(refusal, InvalidCredentials) else "login slowed",
            username=username,
            client=client.address,
            known_device=bool(client.devices),
            path=request.url.path,
        )
        raise
    return SignedIn(user, client)


def start_session(request: Request[Any, Any, Any], signed: SignedIn) -> tuple[str, list[Cookie]]:
    """After `sign_in`: a new access token, and the cookies to set — the token as the session
    cookie for pages, and this browser as a known device of the account."""
    auth = request.app.state.auth
    seconds = int(auth.default_token_expiration.total_seconds())
    encoded = auth.create_token(signed.user.id, token_unique_jwt_id=secrets.token_hex(16))
    session = Cookie(
        key=COOKIE_NAME,
        value=encoded,
        max_age=seconds,
        httponly=True,
        samesite=auth.samesite,
        secure=auth.secure,
    )
    return encoded, [session, device_cookie(request, signed.user.id, signed.client)]


class AuthController(Controller):
    path = "/api"
    tags = ["Authentication"]

    @post(
        "/auth/token",
        status_code=200,
        summary="Sign in; also sets the session cookie for pages",
        responses=refusals(
            _401="Wrong username or password",
            _429="Too many sign-in attempts from this address, or on this account from devices "
            "it does not know; try again after `Retry-After` seconds",
        ),
    )
    async def token(
        self, request: Request[Any, Any, Any], data: JSONBody[Credentials]
    ) -> Response[AccessToken]:
        signed = await sign_in(request, data.username, data.password)
        token, cookies = start_session(request, signed)
        seconds = int(request.app.state.auth.default_token_expiration.total_seconds())
        log.info("login", user_id=signed.user.id)
        return Response(AccessToken(token, "bearer", seconds), status_code=200, cookies=cookies)

    @post(
        "/auth/logout",
        status_code=204,
        summary="Revoke the current token",
        # Ends the page session too; 204 has no body, so none is documented.
        response_cookies=[Cookie(key=COOKIE_NAME, path="/", expires=0, max_age=0)],
    )
    async def logout(self, request: Request[Identity, Token, Any], db: DB) -> None:
        token = request.auth
        if token.jti:
            await revoke_token(db, token.jti, token.exp.astimezone(UTC))

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
