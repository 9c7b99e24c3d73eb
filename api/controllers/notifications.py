"""Notifications: a department's group robots, the messages sent and their fate, and how an
employee is reached by e-mail."""

from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, get, post, put
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.security.jwt import Token

from api.auth import requires
from api.controllers.refusals import refusals
from api.notifications import delivery_config
from api.pages.rendering import language_of
from api.params import DB, DEFAULT_LIMIT, After, Limit
from catalog import contact, departments
from catalog.identity import Identity
from catalog.models import Role
from exchange.notify import channels, outbox, worker
from exchange.notify.channels import ChannelView, RobotChange
from exchange.notify.models import Delivery, Kind
from exchange.notify.outbox import Sent

Url = Annotated[str, msgspec.Meta(min_length=1, max_length=channels.MAX_URL)]
Secret = Annotated[str, msgspec.Meta(max_length=channels.SECRET_LENGTH[1])]
RobotKind = Literal["wecom", "dingtalk", "feishu"]


class RobotIn(msgspec.Struct, forbid_unknown_fields=True):
    """Absent fields keep what is stored; `secret: null` removes the signing secret."""

    webhook_url: Url | msgspec.UnsetType = msgspec.UNSET
    secret: Secret | msgspec.UnsetType | None = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET


class ChannelsIn(msgspec.Struct, forbid_unknown_fields=True):
    """Each robot: its settings, `null` to remove it, or absent to leave it as it is."""

    wecom: RobotIn | msgspec.UnsetType | None = msgspec.UNSET
    dingtalk: RobotIn | msgspec.UnsetType | None = msgspec.UNSET
    feishu: RobotIn | msgspec.UnsetType | None = msgspec.UNSET


class ChannelOut(msgspec.Struct):
    kind: str
    configured: bool
    enabled: bool
    webhook_url: str  # masked: the host and the token's last four characters
    has_secret: bool
    updated_at: str | None
    updated_by: str | None

    @classmethod
    def of(cls, view: ChannelView) -> "ChannelOut":
        return cls(
            kind=view.kind,
            configured=view.configured,
            enabled=view.enabled,
            webhook_url=view.webhook_url,
            has_secret=view.has_secret,
            updated_at=view.updated_at.isoformat() if view.updated_at else None,
            updated_by=view.updated_by,
        )


class ChannelsOut(msgspec.Struct):
    channels: list[ChannelOut]
    email: bool  # whether this server sends e-mail (to employees who gave an address)


class TestResult(msgspec.Struct):
    sent: bool
    error: str | None


class DeliveryOut(msgspec.Struct):
    id: str  # goes with every attempt: the e-mail's Message-ID, the robot message's last line
    channel: str
    target: str
    state: str  # queued, sent, dead (no more attempts), skipped (nobody to send it to)
    attempts: int
    last_error: str | None
    next_attempt_at: str | None  # while queued
    last_attempt_at: str | None
    sent_at: str | None
    resent_at: str | None
    resent_by: str | None

    @classmethod
    def of(cls, delivery: Delivery) -> "DeliveryOut":
        def at(value: Any) -> str | None:
            return value.isoformat() if value else None

        return cls(
            id=delivery.id,
            channel=delivery.channel,
            target=delivery.target,
            state=delivery.state,
            attempts=delivery.attempts,
            last_error=delivery.last_error,
            next_attempt_at=at(delivery.next_attempt_at) if delivery.state == "queued" else None,
            last_attempt_at=at(delivery.last_attempt_at),
            sent_at=at(delivery.sent_at),
            resent_at=at(delivery.resent_at),
            resent_by=delivery.resent_by,
        )


class MessageOut(msgspec.Struct):
    id: str
    department_id: str
    kind: str
    recipient_id: str | None  # the employee; null: the department's group or the admins
    recipient_name: str | None
    reference: str
    created_at: str
    fanned_out: bool  # false: not yet handed to its channels
    deliveries: list[DeliveryOut]  # empty once fanned out: nobody to send it to

    @classmethod
    def of(cls, sent: Sent) -> "MessageOut":
        m = sent.message
        return cls(
            id=m.id,
            department_id=m.department_id,
            kind=m.kind,
            recipient_id=m.recipient_id,
            recipient_name=sent.recipient_name,
            reference=m.reference,
            created_at=m.created_at.isoformat(),
            fanned_out=m.fanned_out,
            deliveries=[DeliveryOut.of(d) for d in sent.deliveries],
        )


class MessagePage(msgspec.Struct):
    items: list[MessageOut]
    next: str | None


class ContactIn(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, msgspec.Meta(max_length=contact.MAX_ADDRESS)] | None
    email_opt_out: bool = False
    language: Literal["zh", "en"] | None = None  # of messages (and pages); null: Chinese


class ContactOut(msgspec.Struct):
    email: str | None
    email_opt_out: bool
    language: str | None

    @classmethod
    def of(cls, found: contact.Contact) -> "ContactOut":
        return cls(found.email, found.email_opt_out, found.language)


# `state` is a name Litestar keeps for the app's state: the handlers take `delivery_state`.
DeliveryState = Annotated[
    Literal["queued", "sent", "dead", "skipped", "none"] | None,
    QueryParameter(
        name="state",
        description="only messages with a delivery in this state (`none`: with no delivery)",
    ),
]
KINDS_TEXT = ", ".join(kind.value for kind in Kind)
LIST_DESCRIPTION = (
    f"Newest first. Kinds: {KINDS_TEXT}. Each message lists its deliveries: one per recipient "
    "and channel, with its attempts, its state and the last error."
)
COORDINATORS = [requires(Role.coordinator, Role.admin)]


def _change(robot: RobotIn | None) -> RobotChange | None:
    if robot is None:
        return None
    return RobotChange(
        webhook_url=None if robot.webhook_url is msgspec.UNSET else robot.webhook_url,
        secret=None if robot.secret is msgspec.UNSET else (robot.secret or ""),
        enabled=None if robot.enabled is msgspec.UNSET else robot.enabled,
    )


class NotificationController(Controller):
    path = "/api"
    tags = ["Notifications"]

    @get(
        "/departments/{department_id:str}/channels",
        guards=COORDINATORS,
        summary="The department's group robots (WeCom, DingTalk, Feishu), masked",
        description="A stored webhook address is shown as its host and the token's last four "
        "characters; a signing secret never (only whether one is set).",
    )
    async def get_channels(
        self, request: Request[Identity, Token, Any], db: DB, department_id: FromPath[str]
    ) -> ChannelsOut:
        await departments.get_department(db, request.user, department_id)
        settings = request.app.state.settings
        views = await channels.channels_of(db, department_id, settings.secret_box)
        return ChannelsOut([ChannelOut.of(v) for v in views], email=bool(settings.smtp_host))

    @put(
        "/departments/{department_id:str}/channels",
        guards=COORDINATORS,
        summary="Set, change or remove the department's group robots",
        description="Per robot: `webhook_url` exactly as the platform shows it (HTTPS, the "
        "platform's host), `secret` the signing secret (DingTalk 加签, Feishu 签名校验; `null` "
        "removes it), `enabled`. An absent field keeps what is stored; a robot given as `null` "
        "is removed. The answer is masked like GET.",
    )
    async def put_channels(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        department_id: FromPath[str],
        data: JSONBody[ChannelsIn],
    ) -> ChannelsOut:
        await departments.get_active_department(db, request.user, department_id)
        settings = request.app.state.settings
        changes = {
            kind: _change(value)
            for kind in ("wecom", "dingtalk", "feishu")
            if (value := getattr(data, kind)) is not msgspec.UNSET
        }
        views = await channels.set_channels(
            db,
            department_id,
            changes,
            request.user.user_id,
            settings.secret_box,
            settings.webhook_hosts,
        )
        return ChannelsOut([ChannelOut.of(v) for v in views], email=bool(settings.smtp_host))

    @post(
        "/departments/{department_id:str}/channels/{kind:str}/test",
        status_code=200,
        guards=COORDINATORS,
        summary="Post a test message to one of the department's robots now",
        description="Answers whether the platform took it, and its error if not.",
        responses=refusals(_404="No robot of that kind is set up"),
    )
    async def test_channel(
        self,
        request: Request[Identity, Token, Any],
        department_id: FromPath[str],
        kind: FromPath[RobotKind],
    ) -> TestResult:
        # No transaction stays open while the platform answers (up to the send timeout).
        factory = request.app.state.session_factory
        async with factory() as session, session.begin():
            department = await departments.get_department(session, request.user, department_id)
            robot = await channels.robot(
                session, department_id, kind, request.app.state.settings.secret_box
            )
        config = delivery_config(request.app.state.settings)
        outcome = await worker.send_trial(config, robot, department.name, language_of(request))
        return TestResult(outcome.sent, outcome.error or None)

    @get(
        "/departments/{department_id:str}/messages",
        guards=COORDINATORS,
        summary="What was sent to the department's people and group, what failed and why",
        description=LIST_DESCRIPTION,
    )
    async def list_messages(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        department_id: FromPath[str],
        delivery_state: DeliveryState = None,
        limit: Limit = DEFAULT_LIMIT,
        after: After = None,
    ) -> MessagePage:
        await departments.get_department(db, request.user, department_id)
        items, nxt = await outbox.list_messages(
            db, department_id, state=delivery_state, limit=limit, after=after
        )
        return MessagePage([MessageOut.of(s) for s in items], nxt)

    @get(
        "/messages",
        guards=[requires(Role.admin)],
        summary="Every department's messages (platform admins)",
        description=LIST_DESCRIPTION,
    )
    async def list_all_messages(
        self,
        db: DB,
        delivery_state: DeliveryState = None,
        limit: Limit = DEFAULT_LIMIT,
        after: After = None,
    ) -> MessagePage:
        items, nxt = await outbox.list_messages(
            db, None, state=delivery_state, limit=limit, after=after
        )
        return MessagePage([MessageOut.of(s) for s in items], nxt)

    @post(
        "/departments/{department_id:str}/messages/{message_id:str}/resend",
        status_code=200,
        guards=COORDINATORS,
        summary="Send a message again now, on every channel it went to",
        description="Each delivery keeps its id, which the e-mail (Message-ID) and the robot "
        "message carry: a recipient who had it already can tell it is the same message. A "
        "message that had nobody to go to is handed to its channels again.",
    )
    async def resend(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        department_id: FromPath[str],
        message_id: FromPath[str],
    ) -> MessageOut:
        await departments.get_department(db, request.user, department_id)
        return MessageOut.of(await outbox.resend(db, request.user, department_id, message_id))

    @get(
        "/me/notifications",
        summary="How the signed-in user is reached: e-mail address, opt-out, language",
    )
    async def get_contact(self, request: Request[Identity, Token, Any], db: DB) -> ContactOut:
        return ContactOut.of(await contact.contact_of(db, request.user.user_id))

    @put(
        "/me/notifications",
        summary="Give (or remove) an e-mail address for notifications, or opt out",
        description="With an address and no opt-out, messages about the user's drop-offs, "
        "orders and expiring points come by e-mail too (when the server sends e-mail).",
    )
    async def put_contact(
        self, request: Request[Identity, Token, Any], db: DB, data: JSONBody[ContactIn]
    ) -> ContactOut:
        found = await contact.set_contact(
            db,
            request.user.user_id,
            email=data.email,
            email_opt_out=data.email_opt_out,
            language=data.language,
        )
        return ContactOut.of(found)
