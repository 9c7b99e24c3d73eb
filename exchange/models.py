"""Exchange tables. The schema comes from api/migrations/versions/0003_exchange.py; these
classes match it column for column and index for index.

Department-owned tables key on (department_id, id) and every index leads with the
department, so they shard by it. Campaigns and their rates are the platform's reference
data (a campaign with no department applies to every department), and a station's code is
unique platform-wide because a poster's URL names only the code.
"""

from datetime import date, datetime
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
    # Its cartridges go to remanufacturing: only then do CO2e factors for remanufactured
    # cartridges apply to what it collected (exchange/reports/co2e.py).
    cartridges_remanufactured: bool = False
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
    # The CO2e factor set its figures were computed with: a later change to the factors
    # leaves a saved summary as it was.
    co2e_factor_set: str | None = Field(default=None, max_length=32)
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


# --- Report rollups (migration 0009) ---------------------------------------------------------
# Counters per department and Asia/Shanghai day, kept by database triggers on `dropoffs` and
# `orders` in the transaction of every write; exchange/reports/rollups.py defines what each
# row of a raw table adds to them, and renders the triggers and the check from that.

_COUNTER = {"sa_type": sa.BigInteger, "default": 0}


class ReportDropoffDay(SQLModel, table=True):
    """Drop-offs logged on a day, by category and campaign, per status as they stand now."""

    __tablename__ = "report_dropoff_days"

    # Keyed in the order reports group by (the day last), so a scan needs no sort.
    department_id: str = Field(primary_key=True, max_length=32)
    category: str = Field(primary_key=True, max_length=32)
    campaign_id: str = Field(primary_key=True, max_length=32)
    day: date = Field(primary_key=True)
    pending_count: int = Field(**_COUNTER)
    pending_quantity: int = Field(**_COUNTER)
    pending_points: int = Field(**_COUNTER)
    confirmed_count: int = Field(**_COUNTER)
    confirmed_quantity: int = Field(**_COUNTER)
    confirmed_points: int = Field(**_COUNTER)
    rejected_count: int = Field(**_COUNTER)
    rejected_quantity: int = Field(**_COUNTER)
    rejected_points: int = Field(**_COUNTER)


class ReportStationDay(SQLModel, table=True):
    """Drop-offs logged on a day at one collection point."""

    __tablename__ = "report_station_days"

    department_id: str = Field(primary_key=True, max_length=32)
    station_id: str = Field(primary_key=True, max_length=32)
    day: date = Field(primary_key=True)
    dropoffs: int = Field(**_COUNTER)
    confirmed: int = Field(**_COUNTER)
    paper_grams: int = Field(**_COUNTER)
    items: int = Field(**_COUNTER)
    points: int = Field(**_COUNTER)


class ReportDay(SQLModel, table=True):
    """A department's day: the drop-offs logged that day (confirmed quantities by unit),
    points by movement (credits posted or voided, holds posted or released, points expired
    that day) and the orders placed that day by their status now."""

    __tablename__ = "report_days"

    department_id: str = Field(primary_key=True, max_length=32)
    day: date = Field(primary_key=True)
    dropoffs: int = Field(**_COUNTER)
    dropoffs_confirmed: int = Field(**_COUNTER)
    paper_grams: int = Field(**_COUNTER)
    items: int = Field(**_COUNTER)
    points_issued: int = Field(**_COUNTER)
    points_rejected: int = Field(**_COUNTER)
    points_spent: int = Field(**_COUNTER)
    points_released: int = Field(**_COUNTER)
    points_expired: int = Field(**_COUNTER)  # by the expiry sweep (exchange/expiry.py)
    orders_reserved: int = Field(**_COUNTER)
    orders_reserved_points: int = Field(**_COUNTER)
    orders_fulfilled: int = Field(**_COUNTER)
    orders_fulfilled_points: int = Field(**_COUNTER)
    orders_cancelled: int = Field(**_COUNTER)
    orders_cancelled_points: int = Field(**_COUNTER)
    orders_expired: int = Field(**_COUNTER)
    orders_expired_points: int = Field(**_COUNTER)


class ReportProductDay(SQLModel, table=True):
    """Orders of one product picked up on a day, at the values snapshotted into them."""

    __tablename__ = "report_product_days"

    department_id: str = Field(primary_key=True, max_length=32)
    product_id: str = Field(primary_key=True, max_length=32)
    day: date = Field(primary_key=True)
    picked_up: int = Field(**_COUNTER)
    quantity: int = Field(**_COUNTER)
    points: int = Field(**_COUNTER)
    value_fen: int = Field(**_COUNTER)
    product_name: str = Field(default="", max_length=100)
    product_unit: str = Field(default="", max_length=50)


class ReportParticipant(SQLModel, table=True):
    """An employee's confirmed drop-offs logged and orders placed in a day (`span` 'day');
    a month's row counts the days of it with any, a year's row the months (`start_day` the
    first day of the span). Who took part in a period is a count of distinct employees with
    a count above zero over a few such rows, not a scan of drop-offs."""

    __tablename__ = "report_participants"

    department_id: str = Field(primary_key=True, max_length=32)
    span: str = Field(primary_key=True, max_length=8)  # day, month or year
    start_day: date = Field(primary_key=True)
    user_id: str = Field(primary_key=True, max_length=32)
    dropoffs: int = Field(**_COUNTER)
    orders: int = Field(**_COUNTER)


class ReportFirstDropoff(SQLModel, table=True):
    """The day each employee's first confirmed drop-off ever was logged."""

    __tablename__ = "report_first_dropoffs"
    __table_args__ = (sa.Index("ix_report_first_dropoffs_day", "department_id", "first_day"),)

    department_id: str = Field(primary_key=True, max_length=32)
    user_id: str = Field(primary_key=True, max_length=32)
    first_day: date


# --- Month rows (migration 0016) -------------------------------------------------------------
# The day rollups above folded into one row per key and month (`day` is the month's first
# day) by the sweep once the month has ended, so that a year reads 12 rows per key, not 365.
# The triggers never write them: a write that lands in an ended month marks the department's
# month stale instead, and reports read that month from its day rows until the sweep folds it
# again (exchange/reports/months.py).


def _months_of(days: sa.Table, name: str) -> sa.Table:
    return sa.Table(name, SQLModel.metadata, *(column._copy() for column in days.columns))


REPORT_DROPOFF_MONTHS = _months_of(ReportDropoffDay.__table__, "report_dropoff_months")  # type: ignore[attr-defined]
REPORT_STATION_MONTHS = _months_of(ReportStationDay.__table__, "report_station_months")  # type: ignore[attr-defined]
REPORT_MONTHS = _months_of(ReportDay.__table__, "report_months")  # type: ignore[attr-defined]
REPORT_PRODUCT_MONTHS = _months_of(ReportProductDay.__table__, "report_product_months")  # type: ignore[attr-defined]


class ReportFoldedMonth(SQLModel, table=True):
    """A month the sweep has folded into month rows, for every department."""

    __tablename__ = "report_folded_months"

    month: date = Field(primary_key=True)
    folded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ReportStaleMonth(SQLModel, table=True):
    """A department's month that a write changed after the month ended: its month rows may
    be behind its day rows until the sweep folds it again."""

    __tablename__ = "report_stale_months"

    department_id: str = Field(primary_key=True, max_length=32)
    month: date = Field(primary_key=True)


# --- CO2e factors (migration 0009) -----------------------------------------------------------


class Co2eFactorSet(SQLModel, table=True):
    """One version of the CO2e factors: every change makes a new set; none is ever edited."""

    __tablename__ = "co2e_factor_sets"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_by: str = Field(max_length=32)
    note: str = Field(default="", max_length=300)


class Co2eFactor(SQLModel, table=True):
    """Grams CO2e avoided per kilogram or per item of a category, against a baseline, with
    its source. `grams` None: no figure is claimed for the category (the note says why)."""

    __tablename__ = "co2e_factors"

    set_id: str = Field(foreign_key="co2e_factor_sets.id", primary_key=True, max_length=32)
    category: str = Field(primary_key=True, max_length=32)
    valid_from: date = Field(primary_key=True)
    basis: str = Field(max_length=8)  # kg or item
    grams: int | None = None
    baseline: str = Field(default="", max_length=100)
    # "remanufactured": only for drop-offs of campaigns whose cartridges are remanufactured.
    applies_to: str = Field(default="all", max_length=16)
    publication: str = Field(default="", max_length=300)
    version: str = Field(default="", max_length=100)
    exhibit: str = Field(default="", max_length=100)  # table or exhibit
    page: str = Field(default="", max_length=50)
    url: str = Field(default="", max_length=500)
    note_zh: str = Field(default="", max_length=1000)
    note_en: str = Field(default="", max_length=1000)
    to_confirm: bool = False


class JobState(StrEnum):
    queued = "queued"  # waiting for a runner (again, after a runner stopped or died)
    running = "running"  # a runner holds its lease
    succeeded = "succeeded"
    failed = "failed"


class Job(SQLModel, table=True):
    """Work that takes longer than a request should (a member import, later large exports):
    stored, so it survives a restart, and run by whichever process holds its lease.

    A runner claims a job by setting `lease_owner` and `lease_until` and keeps renewing the
    lease while it works; a job whose lease ran out (its runner died) is claimed again.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        sa.Index("ix_jobs_claimable", "state", "lease_until"),
        sa.Index("ix_jobs_owner", "owner_id", "id"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    # The department the work is for; None for platform-wide work.
    department_id: str | None = Field(default=None, foreign_key="departments.id", max_length=32)
    owner_id: str = Field(foreign_key="users.id", max_length=32)
    kind: str = Field(max_length=32)
    state: JobState = Field(default=JobState.queued, sa_type=sa.String(16), max_length=16)
    # What the job works on (e.g. the uploaded file); dropped when it finishes.
    input: bytes | None = Field(default=None, sa_type=sa.LargeBinary)
    progress_done: int = 0
    progress_total: int = 0  # 0: not known yet
    result: dict[str, object] | None = Field(default=None, sa_type=sa.JSON)
    # A problem document: title, detail and, for rejected input, `errors` naming each row.
    error: dict[str, object] | None = Field(default=None, sa_type=sa.JSON)
    # Encrypted secrets of the result (generated passwords): handed to the owner once.
    secret: bytes | None = Field(default=None, sa_type=sa.LargeBinary)
    attempts: int = 0
    lease_owner: str | None = Field(default=None, max_length=80)
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


# --- The offline pickup desk (migration 0011) ----------------------------------------------


class IncidentKind(StrEnum):
    """What stood in the ledger when an offline hand-over reached the server."""

    second_handover = "second_handover"  # the order had been handed over already
    after_cancellation = "after_cancellation"  # the order had been cancelled
    after_expiry = "after_expiry"  # the order had expired


class IncidentStatus(StrEnum):
    open = "open"
    resolved = "resolved"


class IncidentResolution(StrEnum):
    given = "given"  # the item stays with the employee: written off, taken from the stock
    recovered = "recovered"  # the item came back to the desk


class DeskRedemption(SQLModel, table=True):
    """A hand-over a pickup desk sent with its Idempotency-Key, and what it became: the order
    fulfilled, or an incident. A retry with the same key answers this row and writes nothing.
    Refusals are not kept: they wrote nothing, so a retry runs again."""

    __tablename__ = "desk_redemptions"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["department_id", "order_id"], ["orders.department_id", "orders.id"]
        ),
        sa.ForeignKeyConstraint(
            ["department_id", "incident_id"], ["desk_incidents.department_id", "desk_incidents.id"]
        ),
        # The desk that handed an order over first, when a second hand-over turns up.
        sa.Index("ix_desk_redemptions_order", "department_id", "order_id"),
    )

    department_id: str = Field(foreign_key="departments.id", primary_key=True, max_length=32)
    idempotency_key: str = Field(primary_key=True, max_length=128)
    request_hash: str = Field(max_length=64)
    order_id: str = Field(max_length=32)
    outcome: str = Field(max_length=16)  # "fulfilled" or "incident"
    incident_id: str | None = Field(default=None, max_length=32)
    desk_id: str = Field(max_length=64)
    desk_name: str = Field(max_length=100)
    scanned_at: datetime = Field(sa_type=UTCDateTime)  # the desk's clock
    scanned_by: str = Field(foreign_key="users.id", max_length=32)
    submitted_by: str = Field(foreign_key="users.id", max_length=32)
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class DeskIncident(SQLModel, table=True):
    """An offline hand-over the ledger could not take: the order had been handed over,
    cancelled or expired by then. What stands is the first event; the item was given anyway,
    so a coordinator settles it (the item stays given, or was recovered)."""

    __tablename__ = "desk_incidents"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["department_id", "order_id"], ["orders.department_id", "orders.id"]
        ),
        sa.Index("ix_desk_incidents_status", "department_id", "status", "id"),
    )

    department_id: str = Field(foreign_key="departments.id", primary_key=True, max_length=32)
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    kind: IncidentKind = Field(sa_type=sa.String(24), max_length=24)
    order_id: str = Field(max_length=32)
    # What stands: the first hand-over (its desk, if a desk sent it), or the cancellation or
    # expiry; `first_by` is None when the expiry sweep released the order.
    first_desk_id: str | None = Field(default=None, max_length=64)
    first_desk_name: str | None = Field(default=None, max_length=100)
    first_at: datetime = Field(sa_type=UTCDateTime)
    first_by: str | None = Field(default=None, max_length=32)
    # The hand-over that came second.
    desk_id: str = Field(max_length=64)
    desk_name: str = Field(max_length=100)
    scanned_at: datetime = Field(sa_type=UTCDateTime)
    scanned_by: str = Field(foreign_key="users.id", max_length=32)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    status: IncidentStatus = Field(
        default=IncidentStatus.open, sa_type=sa.String(16), max_length=16
    )
    resolution: IncidentResolution | None = Field(
        default=None, sa_type=sa.String(16), max_length=16
    )
    note: str = Field(default="", max_length=300)
    stock_taken: int | None = None  # units taken from the stock when resolved as given
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resolved_by: str | None = Field(default=None, max_length=32)


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
