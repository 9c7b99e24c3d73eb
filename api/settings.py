"""Settings: one typed object read from the environment (prefix EXCHANGE_) or an optional .env."""

import ipaddress
import secrets
from datetime import time
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from api.db import Timeouts
from exchange.notify.sealing import SecretBox
from ledger.signing import KeyRing


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EXCHANGE_", env_file=".env", extra="ignore")

    data_dir: Path = Path("data")
    # Empty means the embedded SQLite file in the data directory.
    database_url: str = ""
    public_base_url: str = "http://127.0.0.1:8000"
    # Empty means a secret generated on first run into the data directory.
    jwt_secret: str = ""
    access_token_minutes: int = Field(default=30, ge=1, le=24 * 60)
    # How long a worker may remember who a token belongs to and that it is not revoked:
    # a logout or role change made through another worker takes effect there within this
    # many seconds (at once in the worker that made it). 0: load the caller every request.
    identity_cache_seconds: float = Field(default=5.0, ge=0, le=60)
    log_format: Literal["auto", "console", "json"] = "auto"
    log_level: str = "INFO"
    login_attempts_per_minute: int = Field(default=10, ge=1)
    # Wrong passwords in a row from one client (a known device, or an address) before that
    # client is locked out of the account, and the first lock's length (catalog/lockout.py).
    login_lockout_failures: int = Field(default=5, ge=1)
    login_lockout_seconds: int = Field(default=60, ge=1)
    # Sign-in attempts a minute on one account from clients it does not know, platform-wide;
    # past it they wait for the next minute. The account's known devices are never held back.
    login_account_attempts_per_minute: int = Field(default=10, ge=1)
    applications_per_hour: int = Field(default=5, ge=1)
    order_expiry_hours: int = Field(default=7 * 24, ge=1)
    sweep_interval_seconds: float = Field(default=60.0, gt=0)
    # How often the sweeping process takes new ledger entries into the Merkle trees and signs
    # their heads: a signed head covers an entry within about this long (ledger/integration.py).
    integration_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    secure_cookies: bool = False
    # Addresses or networks (comma-separated) of the reverse proxies whose X-Forwarded-For
    # and X-Forwarded-Proto are believed; empty: none, the peer's address is the client's.
    trusted_proxies: str = ""
    # /metrics is off unless one of these is set: a bearer token, or addresses/networks.
    metrics_token: str = ""
    metrics_allow: str = ""

    @field_validator("trusted_proxies", "metrics_allow")
    @classmethod
    def _addresses(cls, value: str, info: ValidationInfo) -> str:
        for item in value.split(","):
            if item.strip() == "*" and info.field_name == "trusted_proxies":
                continue  # uvicorn's "every peer is a proxy"
            if item.strip():
                ipaddress.ip_network(item.strip(), strict=False)  # ValueError names the bad one
        return value

    # How long a request may take before it answers 503 with Retry-After (api/deadlines.py),
    # whatever it waits on; reports and exports (CSV, XLSX, the ledger export, the summary's
    # Word document) have the longer deadline.
    request_deadline_seconds: float = Field(default=4.5, gt=0, le=600)
    report_deadline_seconds: float = Field(default=30.0, gt=0, le=600)
    # PostgreSQL timeouts in seconds (api/db.py Timeouts says what each bounds).
    db_connect_timeout_seconds: float = Field(default=Timeouts.connect, gt=0)
    db_command_timeout_seconds: float = Field(default=Timeouts.command, gt=0)
    db_statement_timeout_seconds: float = Field(default=Timeouts.statement, gt=0)
    db_lock_timeout_seconds: float = Field(default=Timeouts.lock, gt=0)
    db_idle_in_transaction_timeout_seconds: float = Field(
        default=Timeouts.idle_in_transaction, gt=0
    )
    db_pool_timeout_seconds: float = Field(default=Timeouts.pool, gt=0)
    # Background jobs (member imports): how many each process runs at once (0: it only
    # queues them), how often it looks for jobs submitted elsewhere, how long a runner's
    # lease on a job lasts without a heartbeat (a dead runner's job is taken over after
    # that), and how many interrupted attempts a job gets before it fails.
    job_runners: int = Field(default=1, ge=0, le=16)
    job_poll_seconds: float = Field(default=2.0, gt=0)
    job_lease_seconds: float = Field(default=30.0, gt=0)
    job_max_attempts: int = Field(default=3, ge=1)
    # Finished jobs (their results, and secrets never fetched) are deleted by the sweep after
    # this many days.
    job_retention_days: float = Field(default=30, gt=0)
    # How long a stopping server waits for requests in flight before cancelling them.
    shutdown_timeout_seconds: float = Field(default=10.0, gt=0)

    # Notifications (README, "Notifications"). E-mail is off while smtp_host is empty.
    smtp_host: str = ""
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_from: str = ""  # the sender, e.g. "云兑换 <noreply@example.cn>"
    notify_interval_seconds: float = Field(default=5.0, gt=0)
    notify_send_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    notify_max_attempts: int = Field(default=8, ge=1, le=30)
    notify_retry_base_seconds: float = Field(default=30.0, gt=0)
    notify_daily_figures_at: time = time(18, 0)  # Asia/Shanghai
    # Hosts (host or host:port, comma-separated) a robot's webhook may name besides the
    # platforms' own, e.g. an outbound proxy; the platforms' own need HTTPS, these do not.
    notify_webhook_hosts: str = ""
    points_expiry_reminder_days: int = Field(default=7, ge=0, le=365)

    def model_post_init(self, __context: object) -> None:
        self.data_dir = self.data_dir.resolve()
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{self.data_dir / 'exchange.db'}"
        self.public_base_url = self.public_base_url.rstrip("/")

    @property
    def metrics_enabled(self) -> bool:
        return bool(self.metrics_token or self.metrics_allow)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def db_timeouts(self) -> Timeouts:
        return Timeouts(
            connect=self.db_connect_timeout_seconds,
            command=self.db_command_timeout_seconds,
            statement=self.db_statement_timeout_seconds,
            lock=self.db_lock_timeout_seconds,
            idle_in_transaction=self.db_idle_in_transaction_timeout_seconds,
            pool=self.db_pool_timeout_seconds,
        )

    def ensure_data_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)

    @cached_property
    def jwt_signing_secret(self) -> str:
        if self.jwt_secret:
            return self.jwt_secret
        return _read_or_create_secret(self.data_dir / "jwt_secret")

    @property
    def webhook_hosts(self) -> frozenset[str]:
        return frozenset(
            h.strip().lower() for h in self.notify_webhook_hosts.split(",") if h.strip()
        )

    @cached_property
    def secret_box(self) -> SecretBox:
        """Seals the group robots' addresses and secrets in the database (data/notify_key)."""
        return SecretBox.load_or_create(self.data_dir / "notify_key")

    @cached_property
    def keyring(self) -> KeyRing:
        """Ed25519 keys for pickup tokens and tree heads, generated on first run."""
        return KeyRing.load_or_create(self.data_dir / "keys")


def _read_or_create_secret(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    # O_EXCL: two instances starting at once must not each write a different secret.
    try:
        fd = path.open("x")
    except FileExistsError:
        return path.read_text().strip()
    with fd:
        fd.write(secret)
    path.chmod(0o600)
    return secret
