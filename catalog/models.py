"""Identity tables: departments (with their registration and village), users and roles."""

import secrets
import time
from datetime import UTC, datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


def new_id() -> str:
    """An opaque, time-ordered id: 12 hex digits of milliseconds, then 10 random hex digits.

    Time order keeps B-tree inserts local and lets keyset pagination by id follow creation.
    """
    return f"{int(time.time() * 1000):012x}{secrets.token_hex(5)}"


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on the way in and out; SQLite would otherwise hand back naive times."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: store times in UTC with a timezone")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class DepartmentStatus(StrEnum):
    pending = "pending"
    approved = "approved"
    suspended = "suspended"


class Role(StrEnum):
    admin = "admin"
    coordinator = "coordinator"
    auditor = "auditor"
    employee = "employee"


class Department(SQLModel, table=True):
    __tablename__ = "departments"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    name: str = Field(max_length=200, sa_column_kwargs={"unique": True})
    status: DepartmentStatus = Field(
        default=DepartmentStatus.pending, sa_type=sa.String(16), max_length=16
    )
    village_name: str = Field(max_length=200)
    village_county: str = Field(max_length=100)
    village_province: str = Field(max_length=100)
    contact_name: str = Field(max_length=100)
    contact_phone: str = Field(max_length=40)
    pickup_location: str = Field(max_length=300)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_by: str | None = Field(default=None, max_length=32)
    status_changed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    status_changed_by: str | None = Field(default=None, max_length=32)


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    username: str = Field(max_length=64, sa_column_kwargs={"unique": True})
    display_name: str = Field(max_length=100)
    password_hash: str = Field(max_length=200)
    # None for platform-wide staff (admin, platform auditor).
    department_id: str | None = Field(
        default=None, foreign_key="departments.id", index=True, max_length=32
    )
    is_active: bool = True
    language: str | None = Field(default=None, max_length=8)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # Given by the employee, for notifications by e-mail (none is sent after an opt-out).
    email: str | None = Field(default=None, max_length=254)
    email_opt_out: bool = False


class UserRole(SQLModel, table=True):
    """A role of a user; its scope is the user's department, or the platform when it has none."""

    __tablename__ = "user_roles"

    user_id: str = Field(foreign_key="users.id", primary_key=True, max_length=32)
    role: Role = Field(sa_type=sa.String(16), primary_key=True, max_length=16)


class RevokedToken(SQLModel, table=True):
    """Access tokens ended by logout; kept until they would have expired anyway."""

    __tablename__ = "revoked_tokens"

    jti: str = Field(primary_key=True, max_length=64)
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)


class LoginLockout(SQLModel, table=True):
    """Failed sign-ins in a row to one account from one client, and until when that client is
    refused for that account. The client is a device that signed in before (its signed device
    cookie) or else the address, so a stranger's failures lock out only the stranger.

    In the database, not in a process, so every worker and instance counts the same failures.
    """

    __tablename__ = "login_lockouts"

    user_id: str = Field(foreign_key="users.id", primary_key=True, max_length=32)
    # "device:<id>" or "address:<ip>" (catalog.lockout.Client)
    client: str = Field(primary_key=True, max_length=80)
    failures: int = 0
    locked_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_failure_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class RateLimitHit(SQLModel, table=True):
    """Requests counted against a limit in a key's current window, shared by every worker.

    Times are whole seconds since the epoch: the counting is one upsert of integer sums.
    """

    __tablename__ = "rate_limit_hits"

    key: str = Field(primary_key=True, max_length=200)
    window_start: int = Field(sa_type=sa.BigInteger)
    hits: int = 0
    expires_at: int = Field(sa_type=sa.BigInteger, index=True)


class Product(SQLModel, table=True):
    """A product of a department's village catalog. Orders snapshot its price and value."""

    __tablename__ = "products"
    __table_args__ = (
        sa.CheckConstraint("stock >= 0", name="ck_products_stock_not_negative"),
        sa.CheckConstraint("price_points > 0", name="ck_products_price_positive"),
        sa.CheckConstraint("value_fen >= 0", name="ck_products_value_not_negative"),
    )

    department_id: str = Field(foreign_key="departments.id", primary_key=True, max_length=32)
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    name: str = Field(max_length=100)
    description: str = Field(default="", max_length=2000)
    unit: str = Field(max_length=50)
    price_points: int
    value_fen: int = Field(sa_type=sa.BigInteger)
    stock: int
    photo: str | None = Field(default=None, max_length=64)
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_by: str = Field(max_length=32)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_by: str = Field(max_length=32)


class ProductChange(SQLModel, table=True):
    """One field of a product changed by a coordinator: who, when, from what to what."""

    __tablename__ = "product_changes"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["department_id", "product_id"], ["products.department_id", "products.id"]
        ),
        sa.Index("ix_product_changes_product", "department_id", "product_id", "id"),
    )

    department_id: str = Field(foreign_key="departments.id", primary_key=True, max_length=32)
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    product_id: str = Field(max_length=32)
    field: str = Field(max_length=32)
    old_value: str | None = Field(default=None, max_length=2000)
    new_value: str | None = Field(default=None, max_length=2000)
    changed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    changed_by: str = Field(max_length=32)
