"""Exchange: stations, campaigns and rate cards, drop-offs, products and their changes, orders.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from catalog.models import UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _department() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        "department_id", sa.String(32), sa.ForeignKey("departments.id"), primary_key=True
    )


def upgrade() -> None:
    op.create_table(
        "stations",
        _department(),
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("code", sa.String(16), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("location", sa.String(200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(32), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(32), nullable=False),
    )
    op.create_index("ux_stations_code", "stations", ["code"], unique=True)

    op.create_table(
        "campaigns",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("department_id", sa.String(32), sa.ForeignKey("departments.id"), nullable=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("starts_at", UTCDateTime(), nullable=False),
        sa.Column("ends_at", UTCDateTime(), nullable=False),
        sa.Column("policy", sa.String(16), nullable=False),
        sa.Column("daily_cap_points", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(32), nullable=False),
        sa.CheckConstraint("ends_at > starts_at", name="ck_campaigns_window"),
    )
    op.create_index(
        "ix_campaigns_department_window", "campaigns", ["department_id", "ends_at", "starts_at"]
    )
    op.create_table(
        "campaign_rates",
        sa.Column("campaign_id", sa.String(32), sa.ForeignKey("campaigns.id"), primary_key=True),
        sa.Column("category", sa.String(32), primary_key=True),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(32), nullable=False),
    )

    op.create_table(
        "dropoffs",
        _department(),
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("station_id", sa.String(32), nullable=False),
        sa.Column("campaign_id", sa.String(32), sa.ForeignKey("campaigns.id"), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("unit", sa.String(8), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("confirmed_quantity", sa.Integer(), nullable=True),
        sa.Column("rate_points", sa.Integer(), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("local_day", sa.String(10), nullable=False),
        sa.Column("ledger_seq", sa.BigInteger(), nullable=False),
        sa.Column("resolution_seq", sa.BigInteger(), nullable=True),
        sa.Column("adjustment_seq", sa.BigInteger(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("decided_by", sa.String(32), nullable=True),
        sa.Column("reject_reason", sa.String(300), nullable=True),
        sa.Column("idempotency_key", sa.String(128), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["department_id", "station_id"], ["stations.department_id", "stations.id"]
        ),
    )
    op.create_index(
        "ux_dropoffs_idempotency",
        "dropoffs",
        ["department_id", "user_id", "idempotency_key"],
        unique=True,
    )
    op.create_index("ix_dropoffs_user", "dropoffs", ["department_id", "user_id", "id"])
    op.create_index("ix_dropoffs_user_day", "dropoffs", ["department_id", "user_id", "local_day"])
    op.create_index("ix_dropoffs_status", "dropoffs", ["department_id", "status", "id"])

    op.create_table(
        "products",
        _department(),
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("description", sa.String(2000), nullable=False),
        sa.Column("unit", sa.String(50), nullable=False),
        sa.Column("price_points", sa.Integer(), nullable=False),
        sa.Column("value_fen", sa.BigInteger(), nullable=False),
        sa.Column("stock", sa.Integer(), nullable=False),
        sa.Column("photo", sa.String(64), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(32), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(32), nullable=False),
        # The database itself refuses a negative stock, whatever the application does.
        sa.CheckConstraint("stock >= 0", name="ck_products_stock_not_negative"),
        sa.CheckConstraint("price_points > 0", name="ck_products_price_positive"),
        sa.CheckConstraint("value_fen >= 0", name="ck_products_value_not_negative"),
    )
    op.create_table(
        "product_changes",
        _department(),
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("product_id", sa.String(32), nullable=False),
        sa.Column("field", sa.String(32), nullable=False),
        sa.Column("old_value", sa.String(2000), nullable=True),
        sa.Column("new_value", sa.String(2000), nullable=True),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.Column("changed_by", sa.String(32), nullable=False),
        sa.ForeignKeyConstraint(
            ["department_id", "product_id"], ["products.department_id", "products.id"]
        ),
    )
    op.create_index(
        "ix_product_changes_product", "product_changes", ["department_id", "product_id", "id"]
    )

    op.create_table(
        "orders",
        _department(),
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("product_id", sa.String(32), nullable=False),
        sa.Column("product_name", sa.String(100), nullable=False),
        sa.Column("product_unit", sa.String(50), nullable=False),
        sa.Column("unit_price_points", sa.Integer(), nullable=False),
        sa.Column("unit_value_fen", sa.BigInteger(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("value_fen", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("hold_seq", sa.BigInteger(), nullable=False),
        sa.Column("resolution_seq", sa.BigInteger(), nullable=True),
        sa.Column("pickup_jti", sa.String(32), nullable=False),
        sa.Column("pickup_kid", sa.String(32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.Column("resolved_by", sa.String(32), nullable=True),
        sa.Column("idempotency_key", sa.String(128), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["department_id", "product_id"], ["products.department_id", "products.id"]
        ),
    )
    op.create_index(
        "ux_orders_idempotency",
        "orders",
        ["department_id", "user_id", "idempotency_key"],
        unique=True,
    )
    op.create_index("ix_orders_user", "orders", ["department_id", "user_id", "id"])
    op.create_index("ix_orders_status", "orders", ["department_id", "status", "id"])
    op.create_index("ix_orders_expiry", "orders", ["department_id", "status", "expires_at"])


def downgrade() -> None:
    for index, table in (
        ("ix_orders_expiry", "orders"),
        ("ix_orders_status", "orders"),
        ("ix_orders_user", "orders"),
        ("ux_orders_idempotency", "orders"),
    ):
        op.drop_index(index, table_name=table)
    op.drop_table("orders")
    op.drop_index("ix_product_changes_product", table_name="product_changes")
    op.drop_table("product_changes")
    op.drop_table("products")
    for index in (
        "ix_dropoffs_status",
        "ix_dropoffs_user_day",
        "ix_dropoffs_user",
        "ux_dropoffs_idempotency",
    ):
        op.drop_index(index, table_name="dropoffs")
    op.drop_table("dropoffs")
    op.drop_table("campaign_rates")
    op.drop_index("ix_campaigns_department_window", table_name="campaigns")
    op.drop_table("campaigns")
    op.drop_index("ux_stations_code", table_name="stations")
    op.drop_table("stations")
