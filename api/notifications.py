"""The notification worker's place in the service: its settings, and its loop in the process
that holds the sweep lease (api/sweep.py starts it beside the sweep).

Every `EXCHANGE_NOTIFY_INTERVAL_SECONDS` it delivers what is due; every
`EXCHANGE_SWEEP_INTERVAL_SECONDS` it first writes the messages the clock makes (orders to pick
up by tomorrow, the daily figures) and reminds of and carries out points expiry.
"""

import asyncio
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from api import i18n
from api.problems import is_connection_failure
from api.settings import Settings
from catalog.models import utcnow
from exchange.expiry import sweep_expiry
from exchange.notify.mail import SmtpSettings
from exchange.notify.outbox import sweep_events
from exchange.notify.worker import DeliveryConfig, deliver_round, http_client

log = structlog.get_logger()


def smtp_settings(settings: Settings) -> SmtpSettings | None:
    if not settings.smtp_host:
        return None
    return SmtpSettings(
        host=settings.smtp_host,
        port=settings.smtp_port,
        security=settings.smtp_security,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value(),
        sender=settings.smtp_from or settings.smtp_username or f"noreply@{settings.smtp_host}",
        timeout=settings.notify_send_timeout_seconds,
    )


def delivery_config(settings: Settings) -> DeliveryConfig:
    return DeliveryConfig(
        base_url=settings.public_base_url,
        box=settings.secret_box,
        translations=i18n.translations,
        smtp=smtp_settings(settings),
        send_timeout=settings.notify_send_timeout_seconds,
        max_attempts=settings.notify_max_attempts,
        retry_base=settings.notify_retry_base_seconds,
        default_language=i18n.DEFAULT_LANGUAGE,
    )


async def sweep_once(
    session_factory: async_sessionmaker[AsyncSession],
    settings: Settings,
    now: datetime | None = None,
) -> None:
    """The clock's events and points expiry, once."""
    now = now or utcnow()
    written = await sweep_events(session_factory, now, settings.notify_daily_figures_at)
    swept = await sweep_expiry(
        session_factory, now, timedelta(days=settings.points_expiry_reminder_days)
    )
    if written or swept.reminded or swept.expired:
        log.info(
            "notification sweep",
            messages=written,
            expiry_reminders=swept.reminded,
            expired_accounts=swept.expired,
            expired_points=swept.points,
        )


async def run_while(
    holds_lease: Callable[[], bool],
    session_factory: async_sessionmaker[AsyncSession],
    settings: Settings,
    config: DeliveryConfig | None = None,
) -> None:
    """Deliver (and sweep) whenever this process holds the sweep lease; runs until cancelled."""
    config = config or delivery_config(settings)
    last_sweep = time.monotonic()  # the first sweep one interval after start, as the ledger's
    async with http_client(config) as client:
        while True:
            await asyncio.sleep(settings.notify_interval_seconds)
            if not holds_lease():
                continue
            try:
                if time.monotonic() - last_sweep >= settings.sweep_interval_seconds:
                    last_sweep = time.monotonic()
                    await sweep_once(session_factory, settings)
                result = await deliver_round(session_factory, config, client)
                if result.sent or result.dead:
                    log.info("notifications delivered", sent=result.sent, dead=result.dead)
            except Exception as error:  # keep going: the next round retries what failed
                if is_connection_failure(error):
                    log.warning("notifications skipped: database unreachable")
                else:
                    log.exception("notification round failed")
