"""Pickup tokens: the signed, single-use proof an employee shows at the pickup desk.

Format: a compact JWS (JWT) signed with EdDSA over Ed25519.

- header: `{"alg": "EdDSA", "kid": <key id>, "typ": "JWT"}`; the key id names one of the
  public keys published at `/api/keys` (JWKS), so a desk can check the signature offline.
- claims: `sub` the order id, `dep` the department id, `aud` "pickup", `exp` the order's
  expiry (seconds since the epoch), `jti` a random id unique to the order.

The QR code carries `{PUBLIC_BASE_URL}/p/{token}`. Redeeming needs a coordinator of the
token's department and happens once: the order row is locked while it is marked fulfilled
and its hold is posted (on PostgreSQL in one server-side call, see exchange/one_call.py).
"""

from dataclasses import dataclass
from datetime import datetime

import jwt
from sqlalchemy import select

from catalog.models import User, utcnow
from exchange import one_call
from exchange.errors import (
    AlreadyPickedUp,
    PickupTokenExpired,
    PickupTokenForeignDepartment,
    PickupTokenMalformed,
    PickupTokenRevoked,
    PickupTokenSignatureInvalid,
)
from exchange.models import Order, OrderStatus
from exchange.orders import RESOLVE_CALL, locked_order, order_of, resolve
from ledger import transfers
from ledger.db import Db
from ledger.encoding import to_us
from ledger.errors import UnknownKey
from ledger.signing import KeyRing, PublicKeySet

U = User.__table__

AUDIENCE = "pickup"
ALGORITHM = "EdDSA"
MAX_TOKEN_LENGTH = 2048
MAX_EXP = 253402300799  # 9999-12-31T23:59:59Z: the last second a datetime can hold


def sign(keyring: KeyRing, order: Order) -> str:
    """The order's token. Ed25519 is deterministic, so the same order and key always give
    the same token: it need not be stored."""
    key = keyring.signing_key(order.pickup_kid)
    claims = {
        "sub": order.id,
        "dep": order.department_id,
        "aud": AUDIENCE,
        "exp": int(order.expires_at.timestamp()),
        "jti": order.pickup_jti,
    }
    return jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid})


def pickup_url(public_base_url: str, token: str) -> str:
    return f"{public_base_url}/p/{token}"


def token_from_scan(scanned: str) -> str:
    """The token alone, from either the token or the whole URL a scanner read."""
    text = scanned.strip()
    if "/p/" in text:
        text = text.rsplit("/p/", 1)[1]
    return text.split("?", 1)[0].split("#", 1)[0].strip("/")


@dataclass(frozen=True)
class PickupClaims:
    order_id: str
    department_id: str
    jti: str
    expires_at: datetime


def verify(keys: PublicKeySet, scanned: str, now: datetime | None = None) -> PickupClaims:
    """Check the signature, then the expiry; each failure has its own error."""
    token = token_from_scan(scanned)
    if not token or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
        raise PickupTokenMalformed("This is not a pickup token.")
    try:
        header = jwt.get_unverified_header(token)
    # Not a JWS at all, or a header PyJWT refuses (e.g. a `kid` that is not a string).
    except jwt.InvalidTokenError:
        raise PickupTokenMalformed("This is not a pickup token.") from None
    kid = header.get("kid")
    if header.get("alg") != ALGORITHM or not isinstance(kid, str):
        raise PickupTokenSignatureInvalid("The token is not signed the way pickup tokens are.")
    try:
        public_key = keys.public_key(kid)
    except UnknownKey:
        raise PickupTokenSignatureInvalid(
            "The token is signed with a key this service does not know: it is forged."
        ) from None
    now_ts = (now or utcnow()).timestamp()
    try:
        claims = jwt.decode(
            token,
            public_key,  # type: ignore[arg-type]
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            options={"require": ["sub", "dep", "aud", "exp", "jti"], "verify_exp": False},
        )
    except jwt.InvalidSignatureError:
        raise PickupTokenSignatureInvalid(
            "The token's signature does not match its content: it was forged or altered."
        ) from None
    except jwt.DecodeError:
        raise PickupTokenMalformed("This is not a pickup token.") from None
    except jwt.InvalidTokenError as error:
        raise PickupTokenMalformed(
            f"The token lacks what a pickup token carries: {error}."
        ) from None
    if not all(isinstance(claims[name], str) for name in ("sub", "dep", "jti")) or not (
        isinstance(claims["exp"], int) and 0 <= claims["exp"] <= MAX_EXP
    ):
        raise PickupTokenMalformed("The token's claims are not what a pickup token carries.")
    expires = datetime.fromtimestamp(int(claims["exp"]), tz=utcnow().tzinfo)
    if now_ts >= claims["exp"]:
        raise PickupTokenExpired(
            f"The token expired at {expires.isoformat()}; the order was not picked up in time."
        )
    return PickupClaims(claims["sub"], claims["dep"], claims["jti"], expires)


async def redeem(
    db: Db,
    keys: PublicKeySet,
    scanned: str,
    *,
    coordinator_id: str,
    coordinator_department_id: str | None,
    now: datetime | None = None,
    valid_at: datetime | None = None,
) -> Order:
    """Hand the order over: mark it fulfilled and post its hold, exactly once.

    `valid_at` is when the token must have been valid (default: now): an offline desk's
    scan time, so a hand-over made before the token expired still posts when it syncs later.
    """
    now = now or utcnow()
    claims = verify(keys, scanned, valid_at or now)
    if claims.department_id != coordinator_department_id:
        raise PickupTokenForeignDepartment(
            "This token is for another department's order; it can only be redeemed at that "
            "department's pickup desk."
        )
    row = await one_call.call(
        db, RESOLVE_CALL, claims.department_id, claims.order_id, coordinator_id, transfers.POST,
        claims.jti, None, now, to_us(now), f"order:{claims.order_id}:post",
    )  # fmt: skip
    if row is not None:
        return order_of(row)
    async with one_call.transaction(db) as conn:
        # The row lock makes concurrent scans of one token take turns: the second one sees
        # the order already fulfilled.
        order = await locked_order(conn, claims.department_id, claims.order_id)
        if order is None or order.pickup_jti != claims.jti:
            raise PickupTokenRevoked("The token does not belong to a current order.")
        if order.status == OrderStatus.fulfilled:
            assert order.resolved_at is not None
            who = (
                await conn.execute(select(U.c.display_name).where(U.c.id == order.resolved_by))
            ).scalar_one_or_none()
            raise AlreadyPickedUp(order.id, order.resolved_at, who or str(order.resolved_by))
        if order.status != OrderStatus.reserved:
            when = order.resolved_at.isoformat() if order.resolved_at else "?"
            raise PickupTokenRevoked(
                f"The order was {order.status} at {when}; its token is no longer valid."
            )
        entry = await transfers.post_pending(
            conn,
            ledger_id=order.department_id,
            pending_seq=order.hold_seq,
            idempotency_key=f"order:{order.id}:post",
            actor=coordinator_id,
            now=now,
        )
        order.status = OrderStatus.fulfilled
        order.resolution_seq = entry.seq
        order.resolved_at = now
        order.resolved_by = coordinator_id
        return await resolve(conn, order)
