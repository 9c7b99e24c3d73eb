"""Key ring: files on disk, rotation, JWKS, and signed tree heads."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import jwt
import pytest

from ledger.errors import UnknownKey
from ledger.signing import KeyRing, key_id
from ledger.treehead import TreeHead, sign_tree_head, signature_input


def test_first_load_creates_one_private_key_readable_only_by_its_owner(tmp_path: Path) -> None:
    ring = KeyRing.load_or_create(tmp_path / "keys")
    files = sorted((tmp_path / "keys").glob("*.pem"))
    assert [f.stem for f in files] == [ring.active.kid]
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert ring.active.kid == key_id(ring.active.public_key)
    assert KeyRing.load_or_create(tmp_path / "keys").active.kid == ring.active.kid


def test_rotation_keeps_old_keys_for_verification_and_persists_the_new_active(
    tmp_path: Path,
) -> None:
    ring = KeyRing.load_or_create(tmp_path)
    old = ring.active
    head = sign_tree_head(old, "dept-1", 3, bytes(32), 1_700_000_000_000_000)
    new = ring.rotate()
    assert ring.active == new != old
    reloaded = KeyRing.load_or_create(tmp_path)
    assert reloaded.active.kid == new.kid
    assert {k["kid"] for k in reloaded.jwks()["keys"]} == {old.kid, new.kid}
    assert head.verify(reloaded)
    assert head.verify(KeyRing.from_jwks(reloaded.jwks()))


def test_jwks_is_rfc8037_and_works_with_pyjwt_eddsa(tmp_path: Path) -> None:
    ring = KeyRing.load_or_create(tmp_path)
    jwks = ring.jwks()
    (jwk,) = jwks["keys"]
    assert jwk.keys() == {"kty", "crv", "x", "kid", "alg", "use"}
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == ("OKP", "Ed25519", "EdDSA", "sig")
    token = jwt.encode(
        {"order": "o1"},
        ring.active.private_key,
        algorithm="EdDSA",
        headers={"kid": ring.active.kid},
    )
    public = jwt.PyJWK(jwk).key
    assert jwt.decode(token, public, algorithms=["EdDSA"]) == {"order": "o1"}


def test_unknown_kid_is_a_domain_error(tmp_path: Path) -> None:
    ring = KeyRing.load_or_create(tmp_path)
    with pytest.raises(UnknownKey) as err:
        ring.public_key("nope")
    assert err.value.code == "ledger.unknown_key"
    with pytest.raises(KeyError):
        KeyRing.from_jwks(ring.jwks()).public_key("nope")


def test_tree_head_round_trips_through_json_and_any_change_breaks_the_signature() -> None:
    ring = KeyRing.ephemeral()
    head = sign_tree_head(ring.active, "dept-7", 42, bytes(range(32)), 1_764_000_000_123_456)
    data = json.loads(json.dumps(head.to_json()))
    assert data["timestamp"] == "2025-11-24T16:00:00.123456Z"
    again = TreeHead.from_json(data)
    assert again == head and again.verify(ring)
    for field, value in [("tree_size", 43), ("ledger_id", "dept-8"), ("root_hash", "00" * 32)]:
        assert not TreeHead.from_json({**data, field: value}).verify(ring)


def test_signature_input_layout_is_the_documented_one() -> None:
    msg = signature_input("d1", 258, b"\xaa" * 32, 1)
    assert msg == (
        b"cloud-exchange/tree-head/v1\x00"
        + b"\x00\x02d1"
        + (258).to_bytes(8, "big")
        + b"\xaa" * 32
        + (1).to_bytes(8, "big")
    )
