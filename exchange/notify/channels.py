"""A department's group robots: set by its coordinators, shown back only masked.

The webhook address is itself a credential (anyone holding it can post to the group), so it
is sealed like the signing secret and shown as its host and the token's last four characters.
An address must be the platform's own (HTTPS, its host, its path, a token): a coordinator
cannot point the server at an address of their choosing. `allowed_hosts` (the operator's
setting) adds hosts — a company's outbound proxy, or the tests' stand-in servers.
"""

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog.models import utcnow
from exchange.errors import InvalidInput, NotFound
from exchange.notify.models import ROBOTS, RobotChannel
from exchange.notify.robots import KINDS
from exchange.notify.sealing import SealBroken, SecretBox

MAX_URL = 500
SECRET_LENGTH = (8, 200)


@dataclass(frozen=True)
class ChannelView:
    """What the page and the API show of a robot: never the address or the secret."""

    kind: str
    configured: bool
    enabled: bool = False
    webhook_url: str = ""  # masked
    has_secret: bool = False
    updated_at: datetime | None = None
    updated_by: str | None = None


@dataclass(frozen=True)
class RobotChange:
    """A robot's new settings. `webhook_url` None keeps the stored address (one must be
    stored); `secret` None keeps the stored secret and "" removes it; `enabled` None keeps."""

    webhook_url: str | None = None
    secret: str | None = None
    enabled: bool | None = None


@dataclass(frozen=True)
class Robot:
    """A robot as the worker posts to it: the address and secret opened."""

    kind: str
    url: str
    secret: str | None


def mask(kind: str, url: str) -> str:
    spec = KINDS[kind]
    token = spec.token_of(url) or ""
    parts = urlsplit(url)
    shown = f"…{token[-4:]}"
    if spec.token_in_query is None:
        return f"{parts.scheme}://{parts.netloc}{spec.path}{shown}"
    return f"{parts.scheme}://{parts.netloc}{spec.path}?{spec.token_in_query}={shown}"


def check_url(kind: str, url: str, allowed_hosts: frozenset[str]) -> str:
    spec = KINDS[kind]
    url = url.strip()
    rule = f"the robot's webhook address as the platform gives it: {spec.example}"
    if not url or len(url) > MAX_URL or not url.isprintable() or " " in url:
        raise InvalidInput(f"{kind}.webhook_url", rule)
    parts = urlsplit(url)
    official = parts.scheme == "https" and parts.hostname in spec.hosts and parts.port is None
    extra = parts.scheme in ("http", "https") and parts.netloc.lower() in allowed_hosts
    if parts.username or parts.password or parts.fragment or not (official or extra):
        raise InvalidInput(f"{kind}.webhook_url", rule)
    if spec.token_of(url) is None:
        raise InvalidInput(f"{kind}.webhook_url", rule)
    return url


def _check_secret(kind: str, secret: str) -> str:
    secret = secret.strip()
    low, high = SECRET_LENGTH
    if not KINDS[kind].signs:
        raise InvalidInput(f"{kind}.secret", "this platform's robots have no signing secret")
    if not low <= len(secret) <= high or not secret.isascii() or not secret.isprintable():
        raise InvalidInput(
            f"{kind}.secret",
            f"the signing secret as the platform shows it, {low}-{high} characters",
        )
    if " " in secret:
        raise InvalidInput(f"{kind}.secret", "the signing secret has no spaces")
    return secret


def _view(row: RobotChannel | None, kind: str, box: SecretBox) -> ChannelView:
    if row is None:
        return ChannelView(kind, configured=False)
    try:
        shown = mask(kind, box.open(row.webhook_url))
    except SealBroken:
        shown = ""  # unreadable: the page asks for the address again
    return ChannelView(
        kind,
        configured=True,
        enabled=row.enabled,
        webhook_url=shown,
        has_secret=row.secret is not None,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )


async def _rows(session: AsyncSession, department_id: str) -> dict[str, RobotChannel]:
    found = await session.exec(
        select(RobotChannel).where(RobotChannel.department_id == department_id)
    )
    return {row.kind: row for row in found.all()}


async def channels_of(
    session: AsyncSession, department_id: str, box: SecretBox
) -> list[ChannelView]:
    rows = await _rows(session, department_id)
    return [_view(rows.get(kind), kind, box) for kind in ROBOTS]


async def set_channels(
    session: AsyncSession,
    department_id: str,
    changes: dict[str, RobotChange | None],
    actor_id: str,
    box: SecretBox,
    allowed_hosts: frozenset[str],
) -> list[ChannelView]:
    """Apply each kind's change (None removes that robot); kinds not named stay as they are.
    All are checked before any is written."""
    rows = await _rows(session, department_id)
    writes: list[tuple[str, RobotChange | None, str | None, str | None]] = []
    for kind, change in changes.items():
        if kind not in KINDS:
            raise InvalidInput(kind, "one of wecom, dingtalk, feishu")
        if change is None:
            writes.append((kind, None, None, None))
            continue
        url = (
            None
            if change.webhook_url is None
            else check_url(kind, change.webhook_url, allowed_hosts)
        )
        if url is None and kind not in rows:
            raise InvalidInput(f"{kind}.webhook_url", "required for a robot not set up yet")
        secret = None if not change.secret else _check_secret(kind, change.secret)
        writes.append((kind, change, url, secret))
    now = utcnow()
    for kind, change, url, secret in writes:
        row = rows.get(kind)
        if change is None:
            if row is not None:
                await session.delete(row)
            continue
        if row is None:
            assert url is not None
            row = RobotChannel(
                department_id=department_id, kind=kind, webhook_url="", updated_by=actor_id
            )
        if url is not None:
            row.webhook_url = box.seal(url)
        if change.secret == "":
            row.secret = None
        elif secret is not None:
            row.secret = box.seal(secret)
        if change.enabled is not None:
            row.enabled = change.enabled
        row.updated_at, row.updated_by = now, actor_id
        session.add(row)
    await session.flush()
    return await channels_of(session, department_id, box)


async def robot(session: AsyncSession, department_id: str, kind: str, box: SecretBox) -> Robot:
    """The robot of `kind` with its address and secret opened (raises SealBroken)."""
    row = await session.get(RobotChannel, (department_id, kind))
    if row is None:
        raise NotFound(f"No {KINDS[kind].label if kind in KINDS else kind} robot is set up.")
    secret = box.open(row.secret) if row.secret is not None else None
    return Robot(kind, box.open(row.webhook_url), secret)
