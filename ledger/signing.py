"""Ed25519 signing keys with ids, kept as PEM files in a directory, published as JWKS.

Layout of the key directory: one ``<kid>.pem`` per key (PKCS#8, mode 0600) and a file
``active`` holding the kid that signs new things. Rotation adds a key and moves ``active``;
old keys stay so that earlier tree heads and outstanding pickup tokens still verify.
The kid is the first 16 hex digits of SHA-256 over the raw 32-byte public key, so anyone
holding the public key can recompute it.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from ledger.errors import UnknownKey

ACTIVE_FILE = "active"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes_raw()


def key_id(key: Ed25519PublicKey) -> str:
    return hashlib.sha256(raw_public(key)).hexdigest()[:16]


def public_jwk(kid: str, key: Ed25519PublicKey) -> dict[str, str]:
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": b64url(raw_public(key)),
        "kid": kid,
        "alg": "EdDSA",
        "use": "sig",
    }


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    def sign(self, message: bytes) -> bytes:
        return self.private_key.sign(message)

    @classmethod
    def generate(cls) -> SigningKey:
        private = Ed25519PrivateKey.generate()
        return cls(key_id(private.public_key()), private)


class PublicKeySet:
    """Verification-only keys, e.g. from the published JWKS (KEYS.json)."""

    def __init__(self, keys: dict[str, Ed25519PublicKey]) -> None:
        self._keys = dict(keys)

    def public_key(self, kid: str) -> Ed25519PublicKey:
        try:
            return self._keys[kid]
        except KeyError:
            raise UnknownKey(kid) from None

    def kids(self) -> list[str]:
        return list(self._keys)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [public_jwk(kid, key) for kid, key in self._keys.items()]}


class KeyRing(PublicKeySet):
    def __init__(self, directory: Path | None, keys: list[SigningKey], active_kid: str) -> None:
        super().__init__({k.kid: k.public_key for k in keys})
        self.directory = directory
        self._signing = {k.kid: k for k in keys}
        self.active = self._signing[active_kid]

    @classmethod
    def load_or_create(cls, directory: Path) -> KeyRing:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        keys = _read_keys(directory)
        active_path = directory / ACTIVE_FILE
        if not keys:
            first = SigningKey.generate()
            _write_key(directory, first)
            try:
                # O_EXCL: if another process created the ring at the same moment, its choice
                # wins and ours is withdrawn, so every instance signs with the same key.
                fd = os.open(active_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                (directory / f"{first.kid}.pem").unlink(missing_ok=True)
            else:
                with os.fdopen(fd, "w") as f:
                    f.write(first.kid + "\n")
            keys = _read_keys(directory)
        active = active_path.read_text().strip() if active_path.exists() else ""
        if active not in {k.kid for k in keys}:
            active = sorted(keys, key=lambda k: k.kid)[0].kid
        return cls(directory, keys, active)

    @classmethod
    def ephemeral(cls) -> KeyRing:
        """An in-memory ring with one fresh key (tests, scratch tools)."""
        key = SigningKey.generate()
        return cls(None, [key], key.kid)

    @classmethod
    def from_jwks(cls, jwks: dict[str, Any]) -> PublicKeySet:
        keys: dict[str, Ed25519PublicKey] = {}
        for jwk in jwks.get("keys", []):
            if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
                continue
            keys[jwk["kid"]] = Ed25519PublicKey.from_public_bytes(b64url_decode(jwk["x"]))
        return PublicKeySet(keys)

    def signing_key(self, kid: str) -> SigningKey:
        try:
            return self._signing[kid]
        except KeyError:
            raise UnknownKey(kid) from None

    def rotate(self) -> SigningKey:
        key = SigningKey.generate()
        if self.directory is not None:
            _write_key(self.directory, key)
            tmp = self.directory / f".{ACTIVE_FILE}.{key.kid}"
            tmp.write_text(key.kid + "\n")
            os.replace(tmp, self.directory / ACTIVE_FILE)
        self._signing[key.kid] = key
        self._keys[key.kid] = key.public_key
        self.active = key
        return key


def _read_keys(directory: Path) -> list[SigningKey]:
    # Here, not at the top: `serialization` costs a verifier (a receipt's check) 0.1 s.
    from cryptography.hazmat.primitives import serialization

    keys = []
    for path in sorted(directory.glob("*.pem")):
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(private, Ed25519PrivateKey):
            raise ValueError(f"{path} is not an Ed25519 private key")
        kid = key_id(private.public_key())
        if path.stem != kid:
            raise ValueError(f"{path}: file name does not match its key id {kid}")
        keys.append(SigningKey(kid, private))
    return keys


def _write_key(directory: Path, key: SigningKey) -> None:
    from cryptography.hazmat.primitives import serialization

    pem = key.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path = directory / f"{key.kid}.pem"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
