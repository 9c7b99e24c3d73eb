"""Robot credentials at rest: sealed with a key kept in the data directory, not the database.

A database dump or backup alone then gives nobody a department's webhook token or signing
secret. Fernet (AES-128-CBC with HMAC-SHA256, from `cryptography`) authenticates what it
decrypts, so a value sealed under another key is refused rather than misread.
"""

from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken


class SealBroken(Exception):
    """A stored value cannot be opened: the key file was replaced or lost."""


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def load_or_create(cls, path: Path) -> "SecretBox":
        """The key at `path`, generated on first use (readable by the owner only)."""
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                # O_EXCL: two instances starting at once must not each write another key.
                with path.open("xb") as file:
                    file.write(Fernet.generate_key())
                path.chmod(0o600)
            except FileExistsError:
                pass
        return cls(path.read_bytes().strip())

    def seal(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode("ascii")

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode()
        except (InvalidToken, ValueError):
            raise SealBroken(
                "the stored robot settings cannot be read with this server's key "
                "(data/notify_key changed); enter the webhook address again"
            ) from None
