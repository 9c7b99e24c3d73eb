"""Pickup tokens: signed, expiring, single-use, for one department's desk; every bad token
is refused under its own title."""

import base64
import io
import json
from datetime import datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image

from catalog.models import utcnow
from ledger.signing import KeyRing
from tests.conftest import World
from tests.exchange.helpers import (
    Client,
    add_product,
    add_station,
    credit,
    decode_image,
    decode_png,
    me,
    open_campaign,
    order,
    render_svg,
)


@pytest.fixture
async def placed(client: Client, world: World) -> dict:
    """emp-a's reserved order of one bag of rice (100 points)."""
    await open_campaign(client, world.headers["admin"], policy="auto")
    station = await add_station(client, world.headers["coord-a"], world.dept_a)
    await credit(client, world, "emp-a", 200, station["code"])
    rice = await add_product(client, world.headers["coord-a"], world.dept_a, price=100)
    response = await order(client, world.headers["emp-a"], rice["id"])
    assert response.status_code == 201
    return response.json()


async def scan(client: Client, world: World, token: str, who: str = "coord-a"):  # type: ignore[no-untyped-def]
    return await client.post("/api/pickups", json={"token": token}, headers=world.headers[who])


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


async def test_the_token_is_a_compact_eddsa_jwt_naming_order_department_expiry_and_id(
    client: Client, world: World, placed: dict
) -> None:
    token = placed["pickup_token"]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA"
    assert header["kid"] == client.app.state.settings.keyring.active.kid
    claims = claims_of(token)
    assert claims["sub"] == placed["id"] and claims["dep"] == world.dept_a
    assert claims["exp"] == int(datetime.fromisoformat(placed["expires_at"]).timestamp())
    assert len(claims["jti"]) >= 16


async def test_a_pickup_desk_can_verify_a_token_offline_with_the_published_keys(
    client: Client, world: World, placed: dict
) -> None:
    jwks = (await client.get("/api/keys")).json()
    token = placed["pickup_token"]
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token)["kid"]]
    claims = jwt.decode(token, key.key, algorithms=["EdDSA"], audience="pickup")
    assert claims["sub"] == placed["id"]


async def test_the_pickup_qr_decodes_to_the_pickup_url_at_the_order_pages_size(
    client: Client, world: World, placed: dict
) -> None:
    url = f"http://exchange.test/p/{placed['pickup_token']}"
    png = await client.get(f"/api/orders/{placed['id']}/qr.png", headers=world.headers["emp-a"])
    assert png.headers["cache-control"] == "private, no-store"
    assert decode_png(png.content) == [url]
    # The order page shows the PNG at its natural size; a phone may also scale it down.
    image = Image.open(io.BytesIO(png.content))
    assert image.width <= 600
    assert decode_image(image.resize((260, 260), Image.Resampling.BILINEAR)) == [url]
    svg = await client.get(f"/api/orders/{placed['id']}/qr.svg", headers=world.headers["emp-a"])
    assert svg.headers["content-type"].startswith("image/svg+xml")
    # The order page inlines the SVG at CSS width min(88vw, 360px) less 16 px of padding:
    # 344 px on a desktop, 314 px on a 375 px wide phone.
    for width in (344, 314):
        assert decode_image(render_svg(svg.text, width)) == [url], width


async def test_a_coordinator_scanning_the_url_fulfils_the_order_and_posts_the_hold(
    client: Client, world: World, placed: dict
) -> None:
    response = await scan(client, world, f"http://exchange.test/p/{placed['pickup_token']}")
    assert response.status_code == 200
    fulfilled = response.json()
    assert fulfilled["status"] == "fulfilled" and fulfilled["resolved_at"]
    assert await me(client, world.headers["emp-a"]) == {
        "available": 100,
        "pending_credit": 0,
        "held": 0,
    }


async def test_a_second_scan_is_refused_saying_when_and_by_whom(
    client: Client, world: World, placed: dict
) -> None:
    first = await scan(client, world, placed["pickup_token"])
    second = await scan(client, world, placed["pickup_token"])
    assert second.status_code == 409
    problem = second.json()
    assert problem["title"] == "Already picked up"
    assert problem["fulfilled_at"] == first.json()["resolved_at"]
    assert problem["fulfilled_by"] == "COORD-A"
    assert "COORD-A" in problem["detail"]
    assert (await me(client, world.headers["emp-a"]))["available"] == 100


async def test_a_malformed_token_is_refused(client: Client, world: World, placed: dict) -> None:
    for bad in ("hello", "http://exchange.test/p/", "a.b.c", "http://exchange.test/p/x.y.z"):
        response = await scan(client, world, bad)
        assert response.status_code == 400, bad
        assert response.json()["title"] == "Pickup token malformed", bad


async def test_an_altered_token_is_refused_as_a_bad_signature(
    client: Client, world: World, placed: dict
) -> None:
    header, _payload, signature = placed["pickup_token"].split(".")
    claims = claims_of(placed["pickup_token"])
    claims["exp"] += 3600  # try to extend it
    forged_payload = (
        base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode())
        .rstrip(b"=")
        .decode()
    )
    response = await scan(client, world, f"{header}.{forged_payload}.{signature}")
    assert response.status_code == 400
    assert response.json()["title"] == "Pickup token signature invalid"


async def test_a_token_forged_with_another_key_is_refused(
    client: Client, world: World, placed: dict
) -> None:
    claims = claims_of(placed["pickup_token"])
    stranger = KeyRing.ephemeral().active
    unknown_kid = jwt.encode(
        claims, stranger.private_key, algorithm="EdDSA", headers={"kid": stranger.kid}
    )
    same_kid = jwt.encode(
        claims,
        Ed25519PrivateKey.generate(),
        algorithm="EdDSA",
        headers={"kid": client.app.state.settings.keyring.active.kid},
    )
    for forged in (unknown_kid, same_kid):
        response = await scan(client, world, forged)
        assert response.status_code == 400
        assert response.json()["title"] == "Pickup token signature invalid"
    hmac_token = jwt.encode(claims, "a guessed secret, as long as HS256 asks", algorithm="HS256")
    assert (await scan(client, world, hmac_token)).json()["title"] == (
        "Pickup token signature invalid"
    )


async def test_an_expired_token_is_refused(client: Client, world: World, placed: dict) -> None:
    keyring = client.app.state.settings.keyring
    claims = claims_of(placed["pickup_token"])
    claims["exp"] = int((utcnow() - timedelta(minutes=1)).timestamp())
    expired = jwt.encode(
        claims, keyring.active.private_key, algorithm="EdDSA", headers={"kid": keyring.active.kid}
    )
    response = await scan(client, world, expired)
    assert response.status_code == 410
    assert response.json()["title"] == "Pickup token expired"


async def test_the_token_of_a_cancelled_order_is_revoked(
    client: Client, world: World, placed: dict
) -> None:
    await client.post(f"/api/orders/{placed['id']}/cancel", headers=world.headers["emp-a"])
    response = await scan(client, world, placed["pickup_token"])
    assert response.status_code == 410
    assert response.json()["title"] == "Pickup token revoked"


async def test_a_token_with_a_jti_not_the_orders_is_revoked(
    client: Client, world: World, placed: dict
) -> None:
    keyring = client.app.state.settings.keyring
    claims = claims_of(placed["pickup_token"]) | {"jti": "an-older-token-id"}
    token = jwt.encode(
        claims, keyring.active.private_key, algorithm="EdDSA", headers={"kid": keyring.active.kid}
    )
    response = await scan(client, world, token)
    assert response.status_code == 410 and response.json()["title"] == "Pickup token revoked"


async def test_another_departments_coordinator_cannot_redeem_the_token(
    client: Client, world: World, placed: dict
) -> None:
    response = await scan(client, world, placed["pickup_token"], who="coord-b")
    assert response.status_code == 403
    assert response.json()["title"] == "Pickup token of another department"
    assert world.dept_a not in response.json()["detail"]
    assert (await me(client, world.headers["emp-a"]))["held"] == 100


async def test_only_coordinators_redeem_tokens(client: Client, world: World, placed: dict) -> None:
    for who in ("emp-a", "admin"):
        response = await scan(client, world, placed["pickup_token"], who=who)
        assert response.status_code == 403, who


async def test_tokens_signed_before_a_key_rotation_still_redeem(
    client: Client, world: World, placed: dict
) -> None:
    keyring = client.app.state.settings.keyring
    old_kid = keyring.active.kid
    keyring.rotate()
    assert keyring.active.kid != old_kid
    response = await scan(client, world, placed["pickup_token"])
    assert response.status_code == 200


async def test_a_signed_token_without_a_pickup_tokens_claims_is_malformed(
    client: Client, world: World, placed: dict
) -> None:
    keyring = client.app.state.settings.keyring
    claims = claims_of(placed["pickup_token"])
    variants = [
        {k: v for k, v in claims.items() if k != "jti"},
        claims | {"aud": "tree-head"},
        claims | {"exp": "tomorrow"},
        claims | {"sub": 42},
    ]
    for variant in variants:
        token = jwt.encode(
            variant,
            keyring.active.private_key,
            algorithm="EdDSA",
            headers={"kid": keyring.active.kid},
        )
        response = await scan(client, world, token)
        assert response.status_code == 400, variant
        assert response.json()["title"] == "Pickup token malformed", variant
