"""Notification tables. The schema comes from api/migrations/versions/0012_notifications.py;
these classes match it column for column and index for index.

A message is one event worth telling someone (the outbox row, written in the event's own
transaction); a delivery is that message on its way to one recipient over one channel, with
its own attempts. The two indexes that do not lead with the department are the delivery
worker's queues: it is one process for the whole platform (under Citus each shard keeps its
own copy of such an index, and the worker's query fans out to them).
"""

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from catalog.models import UTCDateTime, new_id, utcnow


class Kind(StrEnum):
    """What happened; each kind has one audience (exchange/notify/events.py)."""

    dropoff_confirmed = "dropoff_confirmed"
    dropoff_rejected = "dropoff_rejected"
    order_ready = "order_ready"
    order_expiring = "order_expiring"
    order_released = "order_released"
    points_expiring = "points_expiring"
    daily_figures = "daily_figures"
    department_applied = "department_applied"


class Channel(StrEnum):
    email = "email"
    wecom = "wecom"
    dingtalk = "dingtalk"
    feishu = "feishu"


ROBOTS = (Channel.wecom, Channel.dingtalk, Channel.feishu)


class DeliveryState(StrEnum):
    queued = "queued"  # waiting for its next attempt (or being attempted right now)
    sent = "sent"
    dead = "dead"  # the last attempt failed, or the failure cannot heal by retrying
    skipped = "skipped"  # nobody to send it to any more (the employee opted out meanwhile)


class RobotChannel(SQLModel, table=True):
    """A department's group robot of one kind. The webhook URL carries the robot's token and
    the signing secret signs each request: both are stored encrypted and never shown again."""

    __tablename__ = "notification_channels"

    department_id: str = Field(foreign_key="departments.id", primary_key=True, max_length=32)
    kind: str = Field(primary_key=True, max_length=16)
    webhook_url: str = Field(sa_type=sa.Text)  # encrypted (exchange/notify/secrets.py)
    secret: str | None = Field(default=None, sa_type=sa.Text)  # encrypted
    enabled: bool = True
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_by: str = Field(max_length=32)


class Message(SQLModel, table=True):
    """One event worth telling someone, written in the same transaction as the event (by a
    database trigger, or by the sweeper for the events it makes). The text is rendered at
    delivery time, in the recipient's language, from `kind`, `reference` and `detail`."""

    __tablename__ = "notification_messages"
    __table_args__ = (
        sa.Index("ux_notification_messages_dedupe", "department_id", "dedupe_key", unique=True),
        sa.Index("ix_notification_messages_fan_out", "fanned_out", "created_at"),
    )

    department_id: str = Field(foreign_key="departments.id", primary_key=True, max_length=32)
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    kind: str = Field(max_length=32)
    # The employee it is for; None: the department's group, or the platform's admins.
    recipient_id: str | None = Field(default=None, max_length=32)
    reference: str = Field(max_length=64)  # the drop-off, order, campaign or day it is about
    # One message per event, however often an event's writer runs (triggers, sweeper rounds).
    dedupe_key: str = Field(max_length=128)
    detail: str = Field(default="{}", sa_type=sa.Text)  # JSON: figures the sweeper worked out
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    fanned_out: bool = False  # whether its deliveries were made


class Delivery(SQLModel, table=True):
    """A message on its way to one recipient over one channel. Its id goes with every attempt
    (the e-mail's Message-ID, the robot message's text), so a receiver that sees it twice —
    a resend, or a retry after a worker died between sending and recording — can tell."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        sa.Index(
            "ux_notification_deliveries_target",
            "department_id",
            "message_id",
            "target",
            unique=True,
        ),
        sa.Index("ix_notification_deliveries_due", "state", "next_attempt_at"),
        sa.Index("ix_notification_deliveries_state", "department_id", "state", "id"),
    )

    department_id: str = Field(foreign_key="departments.id", primary_key=True, max_length=32)
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    message_id: str = Field(max_length=32)
    channel: str = Field(max_length=16)
    # `user:<id>` for an e-mail, the robot's kind for a group message: one delivery each.
    target: str = Field(max_length=64)
    state: str = Field(default=DeliveryState.queued, max_length=16)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, max_length=500)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    resent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resent_by: str | None = Field(default=None, max_length=32)
