"""The notification tests' world: the service configured to post to the stand-in robots and
to send mail to the stand-in SMTP server, and a worker round the test runs itself."""

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from api.notifications import delivery_config
from api.settings import Settings
from catalog.models import utcnow
from exchange.notify.worker import DeliveryConfig, Round, deliver_round, http_client
from tests.notify.fakes import Mailbox, Robots, mail_server, robot_server


@pytest.fixture
async def robots() -> AsyncIterator[Robots]:
    async with robot_server() as server:
        yield server


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with mail_server() as server:
        yield server


@pytest.fixture
def settings(settings: Settings, robots: Robots, mailbox: Mailbox) -> Settings:
    """tests/conftest.py's settings, posting to the stand-in robots and mailing the stand-in
    SMTP server."""
    return settings.model_copy(
        update={
            "notify_webhook_hosts": robots.netloc,
            "notify_retry_base_seconds": 60,
            "notify_max_attempts": 3,
            "notify_send_timeout_seconds": 5,
            "smtp_host": "127.0.0.1",
            "smtp_port": mailbox.port,
            "smtp_security": "none",
            "smtp_username": mailbox.username,
            "smtp_password": SecretStr(mailbox.password),
            "smtp_from": "云兑换 <noreply@exchange.test>",
        }
    )


@pytest.fixture
def config(settings: Settings) -> DeliveryConfig:
    return delivery_config(settings)


@pytest.fixture
async def deliver(
    session_factory: async_sessionmaker[AsyncSession], config: DeliveryConfig
) -> AsyncIterator["Deliver"]:
    async with http_client(config) as client:
        yield Deliver(session_factory, config, client)


class Deliver:
    """One worker round at a given time (default: now)."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        config: DeliveryConfig,
        client: httpx.AsyncClient,
    ) -> None:
        self.session_factory, self.config, self.client = session_factory, config, client

    async def __call__(self, at=None) -> Round:  # type: ignore[no-untyped-def]
        return await deliver_round(self.session_factory, self.config, self.client, at or utcnow())


Client = AsyncTestClient[Litestar]
