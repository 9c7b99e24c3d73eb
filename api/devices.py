"""Device cookies: a browser that signed in to an account successfully carries a signed token
naming that account and a device id, so its later attempts count as that device's own and a
stranger's failures elsewhere never lock it out (catalog/lockout.py).

Each token is an HS256 JWT (subject: the user id, `jti`: the device id) signed with a key
derived from the JWT secret, so no one can make one up. One cookie holds the tokens of the
last few accounts that signed in on the browser (a shared desk computer), newest first.
"""

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from litestar import Request
from litestar.datastructures import Cookie

from catalog.lockout import Client

DEVICE_COOKIE = "exchange_device"
DEVICE_DAYS = 365
ACCOUNTS_PER_DEVICE = 3
ALGORITHM = "HS256"


SEPARATOR = "~"  # a cookie value may carry it, and no JWT does


def device_key(request: Request[Any, Any, Any]) -> str:
    secret = request.app.state.settings.jwt_signing_secret
    return hmac.new(secret.encode(), b"sign-in device cookies", hashlib.sha256).hexdigest()


def _tokens(request: Request[Any, Any, Any]) -> list[str]:
    value = request.cookies.get(DEVICE_COOKIE, "")
    return [token for token in value.split(SEPARATOR) if token][:ACCOUNTS_PER_DEVICE]


def _claims(token: str, key: str) -> tuple[str, str] | None:
    """(user id, device id) of a token whose signature and expiry hold; None otherwise."""
    try:
        claims = jwt.decode(
            token, key, algorithms=[ALGORITHM], options={"require": ["sub", "jti", "exp"]}
        )
    except jwt.InvalidTokenError:
        return None
    return str(claims["sub"]), str(claims["jti"])


def client_of(request: Request[Any, Any, Any]) -> Client:
    """The address a sign-in comes from and the devices its cookie proves."""
    key = device_key(request)
    devices: dict[str, str] = {}
    for token in _tokens(request):
        if (claims := _claims(token, key)) is not None:
            devices.setdefault(*claims)
    return Client(request.client.host if request.client else "unknown", devices)


def device_cookie(request: Request[Any, Any, Any], user_id: str, client: Client) -> Cookie:
    """After a successful sign-in: this browser becomes a known device of the account (the same
    device id as before, when it was one already), for another DEVICE_DAYS."""
    key = device_key(request)
    device = client.device_of(user_id) or secrets.token_hex(16)
    now = datetime.now(UTC)
    token = jwt.encode(
        {"sub": user_id, "jti": device, "iat": now, "exp": now + timedelta(days=DEVICE_DAYS)},
        key,
        algorithm=ALGORITHM,
    )
    others = [t for t in _tokens(request) if (c := _claims(t, key)) and c[0] != user_id]
    return Cookie(
        key=DEVICE_COOKIE,
        value=SEPARATOR.join([token, *others][:ACCOUNTS_PER_DEVICE]),
        max_age=DEVICE_DAYS * 24 * 3600,
        httponly=True,
        samesite="strict",
        secure=request.app.state.auth.secure,
    )
