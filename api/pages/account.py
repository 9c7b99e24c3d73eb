"""Signing in and out, the language switch, and where each role starts."""

from datetime import UTC
from typing import Any

import structlog
from litestar import Controller, Request, Response, get, post
from litestar.params import FromQuery
from litestar.response import Redirect, Template
from litestar.security.jwt import Token

from api import i18n
from api.auth import COOKIE_NAME
from api.controllers.auth import sign_in, start_session
from api.pages.rendering import page, redirect, safe_next, translator
from api.params import DB
from catalog.errors import InvalidCredentials, SignInThrottled
from catalog.identity import Identity, revoke_token
from catalog.models import Role

log = structlog.get_logger()
LANGUAGE_COOKIE_SECONDS = 365 * 24 * 3600


def start_page(identity: Identity) -> str:
    """Where a role's work begins; someone with several roles starts as an employee."""
    if identity.has(Role.employee):
        return "/home"
    if identity.has(Role.coordinator):
        return "/coord/dropoffs"
    if identity.has(Role.auditor):
        return "/audit/ledger"
    if identity.has(Role.admin):
        return "/admin/departments"
    return "/home"


class AccountPages(Controller):
    include_in_schema = False

    @get("/", exclude_from_auth=True)
    async def root(self) -> Redirect:
        return Redirect(path="/start", status_code=303)

    @get("/login", exclude_from_auth=True)
    async def login_form(
        self, request: Request[Any, Any, Any], next: FromQuery[str | None] = None
    ) -> Template:
        return page(
            request,
            "login.html",
            title=translator(request).gettext("Sign in"),
            next=safe_next(next, ""),
            values={},
            errors={},
        )

    @post("/login", exclude_from_auth=True)
    async def login(self, request: Request[Any, Any, Any]) -> Response[Any]:
        _ = translator(request).gettext
        form = await request.form()
        username = str(form.get("username", "")).strip()
        password = str(form.get("password", ""))
        target = str(form.get("next", ""))
        errors: dict[str, str] = {}
        status_code, headers = 422, None
        if not username:
            errors["username"] = _("Enter your username.")
        if not password:
            errors["password"] = _("Enter your password.")
        if not errors:
            try:
                signed = await sign_in(request, username, password)
            except InvalidCredentials:
                errors["_form"] = _("The username or password is not correct.")
                status_code = 401
            except SignInThrottled as throttled:
                errors["_form"] = _(
                    "Too many sign-in attempts on this account from devices it does not know. "
                    "Try again in %(seconds)d seconds."
                ) % {"seconds": throttled.retry_after}
                status_code, headers = 429, throttled.headers
            else:
                # The same token and cookies as POST /api/auth/token: pages and API agree.
                _token, cookies = start_session(request, signed)
                log.info("login", user_id=signed.user.id, via="page")
                response = redirect(safe_next(target, "/start"))
                response.cookies.extend(cookies)
                return response
        return page(
            request,
            "login.html",
            status_code=status_code,
            headers=headers,
            title=_("Sign in"),
            next=safe_next(target, ""),
            values={"username": username},
            errors=errors,
        )

    @get("/start")
    async def start(self, request: Request[Identity, Token, Any]) -> Redirect:
        return redirect(start_page(request.user))

    @post("/logout")
    async def logout(self, request: Request[Identity, Token, Any], db: DB) -> Redirect:
        token = request.auth
        if token.jti:
            await revoke_token(db, token.jti, token.exp.astimezone(UTC))
        response = redirect("/login")
        response.delete_cookie(COOKIE_NAME)
        return response

    @post("/language", exclude_from_auth=True)
    async def language(self, request: Request[Any, Any, Any]) -> Redirect:
        form = await request.form()
        chosen = i18n.supported(str(form.get("language", ""))) or i18n.DEFAULT_LANGUAGE
        response = redirect(safe_next(str(form.get("next", "")), "/start"))
        response.set_cookie(
            key=i18n.LANGUAGE_COOKIE,
            value=chosen,
            max_age=LANGUAGE_COOKIE_SECONDS,
            httponly=True,
            samesite="lax",
            secure=request.app.state.auth.secure,
        )
        return response
