"""Exchange tables. The schema comes from api/migrations/versions/0003_exchange.py; these
classes match it column for column and index for index.

Department-owned tables key on (department_id, id) and every index leads with the
department, so they shard by it. Campaigns and their rates are the platform's reference
data (a campaign with no department applies to every department), and a station's code is
unique platform-wide because a poster's URL names only the code.
"""

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from catalog.models import UTCDateTime, new_id, utcnow


class Policy(StrEnum):
    auto = "auto"  # credits post at once
    steward = "steward"  # credits stay pending until a coordinator confirms


class DropoffStatus(StrEnum):
    pending = "pending"
    confirmed = "confirmed"
    rejected = "rejected"


class OrderStatus(StrEnum):
    reserved = "reserved"
    fulfilled = "fulfilled"
    cancelled = "cancelled"
    expired = "expired"


class Station(SQLModel, table=True):
    """A collection point; its QR poster leads to `/s/{code}`."""

    __tablename__ = "stations"
    __table_args__ = (sa.Index("ux_stations_code", "code", unique=True),)

    department_id: str = Field(foreign_key="departments.id", primary_key=True, max_length=32)
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    code: str = Field(max_length=16)
    name: str = Field(max_length=100)
    location: str = Field(default="", max_length=200)
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_by: str = Field(max_length=32)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_by: str = Field(max_length=32)


class Campaign(SQLModel, table=True):
    """An exchange window with its verification policy and per-employee daily cap."""

    __tablename__ = "campaigns"
    __table_args__ = (
        sa.CheckConstraint("ends_at > starts_at", name="ck_campaigns_window"),
        sa.Index("ix_campaigns_department_window", "department_id", "ends_at", "starts_at"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    # None: the campaign applies to every department.
    department_id: str | None = Field(default=None, foreign_key="departments.id", max_length=32)
    name: str = Field(max_length=100)
    starts_at: datetime = Field(sa_type=UTCDateTime)
    ends_at: datetime = Field(sa_type=UTCDateTime)
    policy: Policy = Field(sa_type=sa.String(16), max_length=16)
    daily_cap_points: int
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_by: str = Field(max_length=32)
    # When the points it issued expire: at a time, or N days after it ends; neither: never
    # (exchange/expiry.py). Migration 0012.
    points_expire_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    points_expire_days: int | None = None
    # When the sweeper had reminded, and expired, every employee holding its points.
    expiry_reminded_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    expiry_done_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class CampaignRate(SQLModel, table=True):
    """One line of a campaign's rate card: points per kg (weighed) or per item (counted)."""

    __tablename__ = "campaign_rates"

    campaign_id: str = Field(foreign_key="campaigns.id", primary_key=True, max_length=32)
    category: str = Field(primary_key=True, max_length=32)
    points: int
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_by: str = Field(max_length=32)


class Dropoff(SQLModel, table=True):
    """What an employee dropped at a collection point, priced at the rate of that moment."""

    __tablename__ = "dropoffs"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["department_id", "station_id"], ["stations.department_id", "stations.id"]
        ),
        sa.Index(
            "ux_dropoffs_idempotency", "department_id", "user_id", "idempotency_key", unique=True
        ),
        sa.Index("ix_dropoffs_user", "department_id", "user_id", "id"),
        sa.Index("ix_dropoffs_user_day", "department_id", "user_id", "local_day"),
        sa.Index("ix_dropoffs_status", "department_id", "status", "id"),
        # Reports select by when drop-offs were logged and decided (migration 0004).
        sa.Index("ix_dropoffs_created", "department_id", "created_at"),
        sa.Index("ix_dropoffs_decided", "department_id", "decided_at"),
    )

    department_id: str = Field(foreign_key="departments.id", primary_key=True, max_length=32)
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    user_id: str = Field(foreign_key="users.id", max_length=32)
    station_id: str = Field(max_length=32)
    campaign_id: str = Field(foreign_key="campaigns.id", max_length=32)
    category: str = Field(max_length=32)
    unit: str = Field(max_length=8)
    quantity: int  # as declared by the employee: grams or items
    confirmed_quantity: int | None = None  # as weighed or counted by the steward
    rate_points: int  # snapshot: points per kg or per item
    points: int
    status: DropoffStatus = Field(sa_type=sa.String(16), max_length=16)
    # The employee's calendar day in Asia/Shanghai, which the daily cap counts by.
    local_day: str = Field(max_length=10)
    ledger_seq: int = Field(sa_type=sa.BigInteger)  # the pending or direct credit
    resolution_seq: int | None = Field(default=None, sa_type=sa.BigInteger)  # post or void
    adjustment_seq: int | None = Field(default=None, sa_type=sa.BigInteger)  # re-weighed extra
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    decided_by: str | None = Field(default=None, max_length=32)
    reject_reason: str | None = Field(default=None, max_length=300)
    idempotency_key: str = Field(max_length=128)
    request_hash: str = Field(max_length=64)


class Order(SQLModel, table=True):
    """A reservation of a product, paid by a hold on the employee's points until pickup."""

    __tablename__ = "orders"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["department_id", "product_id"], ["products.department_id", "products.id"]
        ),
        sa.Index(
            "ux_orders_idempotency", "department_id", "user_id", "idempotency_key", unique=True
        ),
        sa.Index("ix_orders_user", "department_id", "user_id", "id"),
        sa.Index("ix_orders_status", "department_id", "status", "id"),
        sa.Index("ix_orders_expiry", "department_id", "status", "expires_at"),
        # Reports select by when orders were placed and resolved (migration 0004).
        sa.Index("ix_orders_created", "department_id", "created_at"),
        sa.Index("ix_orders_resolved", "department_id", "resolved_at"),
    )

    department_id: str = Field(foreign_key="departments.id", primary_key=True, max_length=32)
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    user_id: str = Field(foreign_key="users.id", max_length=32)
    product_id: str = Field(max_length=32)
    # Snapshots: a later change to the product never rewrites the order.
    product_name: str = Field(max_length=100)
    product_unit: str = Field(max_length=50)
    unit_price_points: int
    unit_value_fen: int = Field(sa_type=sa.BigInteger)
    quantity: int
    points: int
    value_fen: int = Field(sa_type=sa.BigInteger)
    status: OrderStatus = Field(sa_type=sa.String(16), max_length=16)
    hold_seq: int = Field(sa_type=sa.BigInteger)  # the pending debit
    resolution_seq: int | None = Field(default=None, sa_type=sa.BigInteger)  # post or void
    pickup_jti: str = Field(max_length=32)
    pickup_kid: str = Field(max_length=32)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Who fulfilled or cancelled it; None when the sweep expired it.
    resolved_by: str | None = Field(default=None, max_length=32)
    idempotency_key: str = Field(max_length=128)
    request_hash: str = Field(max_length=64)


class Summary(SQLModel, table=True):
    """A department's activity summary (总结) for one period: the text as last edited and the
    pictures chosen for it. The platform's own summary is kept under PLATFORM_SCOPE."""

    __tablename__ = "summaries"

    # A department id, or "*" for the platform: no foreign key for that reason.
    department_id: str = Field(primary_key=True, max_length=32)
    period: str = Field(primary_key=True, max_length=80)  # see exchange.summaries.period_key
    text: str = Field(sa_type=sa.Text)
    pictures: str = Field(default="", max_length=400)  # space-separated picture references
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_by: str = Field(max_length=32)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_by: str = Field(max_length=32)


class SummaryPhoto(SQLModel, table=True):
    """A photo of the activity uploaded for a summary: re-encoded, without its metadata.

    Kept in the database, not the data directory, so every app instance serves it."""

    __tablename__ = "summary_photos"
    __table_args__ = (sa.Index("ix_summary_photos_period", "department_id", "period", "id"),)

    department_id: str = Field(primary_key=True, max_length=32)
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    period: str = Field(max_length=80)
    media_type: str = Field(max_length=16)
    width: int
    height: int
    content: bytes = Field(sa_type=sa.LargeBinary)
    caption: str = Field(default="", max_length=100)
    uploaded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    uploaded_by: str = Field(max_length=32)


class PointsExpiry(SQLModel, table=True):
    """Where an employee stands with one campaign's points expiry: reminded (with how many
    points were then due to expire) and expired (with the ledger entry), each exactly once."""

    __tablename__ = "points_expiries"

    department_id: str = Field(foreign_key="departments.id", primary_key=True, max_length=32)
    campaign_id: str = Field(foreign_key="campaigns.id", primary_key=True, max_length=32)
    user_id: str = Field(foreign_key="users.id", primary_key=True, max_length=32)
    reminded_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    reminded_points: int | None = None
    expired_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    expired_points: int | None = None
    ledger_seq: int | None = Field(default=None, sa_type=sa.BigInteger)  # None: nothing left
