"""Notifications (an outbox written by triggers, deliveries, group robots), e-mail addresses
and points expiry.

The outbox rows of drop-off decisions, orders and department applications are written by
database triggers, in the same transaction as the change that makes them: whichever code
path makes the change (the Python path, or a server-side function on PostgreSQL), the
message exists exactly when the change committed. Each trigger is one INSERT, and its WHEN
clause keeps it from running at all for the changes that tell nobody (a new drop-off, an
auto-confirmed one, an order picked up, an order the employee cancelled themselves).

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from catalog.models import UTCDateTime

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    "department_id, id, kind, recipient_id, reference, dedupe_key, detail, created_at, fanned_out"
)

# A message id as catalog.models.new_id makes one: 12 hex digits of milliseconds, 10 random.
PG_ID = (
    "lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0')"
    " || substr(md5(random()::text), 1, 10)"
)
SQLITE_ID = (
    "printf('%012x', CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))"
    " || lower(hex(randomblob(5)))"
)
# The time as SQLAlchemy stores a DateTime on SQLite (microseconds, six digits).
SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%f000', 'now')"

# name: (table, event, condition, kind, recipient, reference, dedupe key suffix, time)
TRIGGERS = {
    "dropoffs_notify_decided": (
        "dropoffs",
        "AFTER UPDATE OF status",
        # A coordinator's decision; an auto-confirmed drop-off is the employee's own act.
        "OLD.status = 'pending' AND NEW.status <> 'pending' AND NEW.decided_by IS NOT NULL",
        "'dropoff_' || NEW.status",
        "NEW.user_id",
        "NEW.id",
        "'dropoff:' || NEW.id || ':decided'",
        "NEW.decided_at",
    ),
    "orders_notify_placed": (
        "orders",
        "AFTER INSERT",
        "NEW.status = 'reserved'",
        "'order_ready'",
        "NEW.user_id",
        "NEW.id",
        "'order:' || NEW.id || ':ready'",
        "NEW.created_at",
    ),
    "orders_notify_released": (
        "orders",
        "AFTER UPDATE OF status",
        # Expired, or cancelled by a coordinator: the employee did not do it themselves.
        "OLD.status = 'reserved' AND (NEW.status = 'expired' OR (NEW.status = 'cancelled'"
        " AND (NEW.resolved_by IS NULL OR NEW.resolved_by <> NEW.user_id)))",
        "'order_released'",
        "NEW.user_id",
        "NEW.id",
        "'order:' || NEW.id || ':released'",
        "NEW.resolved_at",
    ),
    "departments_notify_applied": (
        "departments",
        "AFTER INSERT",
        # An application from outside; an admin registering one needs no message to admins.
        "NEW.status = 'pending' AND NEW.created_by IS NULL",
        "'department_applied'",
        "NULL",
        "NEW.id",
        "'department:' || NEW.id || ':applied'",
        "NEW.created_at",
    ),
}


def _create_triggers() -> None:
    # As the driver's SQL: SQLAlchemy's text() would read the ':decided' of a key as a bind.
    execute = op.get_bind().exec_driver_sql
    postgres = op.get_bind().dialect.name == "postgresql"
    for name, (table, event, when, kind, recipient, ref, key, at) in TRIGGERS.items():
        if postgres:
            values = f"NEW.department_id, {PG_ID}, {kind}, {recipient}, {ref}, {key}, '{{}}', "
            values += f"coalesce({at}, now()), false"
            if table == "departments":
                values = values.replace("NEW.department_id", "NEW.id", 1)
            execute(
                f"""
                CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    INSERT INTO notification_messages ({COLUMNS}) VALUES ({values})
                    ON CONFLICT DO NOTHING;
                    RETURN NULL;
                END
                $$
                """
            )
            execute(
                f"CREATE TRIGGER {name} {event} ON {table} FOR EACH ROW WHEN ({when}) "
                f"EXECUTE FUNCTION {name}()"
            )
        else:
            values = f"NEW.department_id, {SQLITE_ID}, {kind}, {recipient}, {ref}, {key}, '{{}}', "
            values += f"coalesce({at}, {SQLITE_NOW}), 0"
            if table == "departments":
                values = values.replace("NEW.department_id", "NEW.id", 1)
            execute(
                f"CREATE TRIGGER {name} {event} ON {table} FOR EACH ROW WHEN {when} BEGIN "
                f"INSERT OR IGNORE INTO notification_messages ({COLUMNS}) VALUES ({values}); END"
            )


def _department() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        "department_id", sa.String(32), sa.ForeignKey("departments.id"), primary_key=True
    )


def upgrade() -> None:
    op.add_column("users", sa.Column("email", sa.String(254), nullable=True))
    op.add_column(
        "users",
        sa.Column("email_opt_out", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("campaigns", sa.Column("points_expire_at", UTCDateTime(), nullable=True))
    op.add_column("campaigns", sa.Column("points_expire_days", sa.Integer(), nullable=True))
    op.add_column("campaigns", sa.Column("expiry_reminded_at", UTCDateTime(), nullable=True))
    op.add_column("campaigns", sa.Column("expiry_done_at", UTCDateTime(), nullable=True))

    op.create_table(
        "notification_channels",
        _department(),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("webhook_url", sa.Text(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(32), nullable=False),
    )
    op.create_table(
        "notification_messages",
        _department(),
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("recipient_id", sa.String(32), nullable=True),
        sa.Column("reference", sa.String(64), nullable=False),
        sa.Column("dedupe_key", sa.String(128), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("fanned_out", sa.Boolean(), nullable=False),
    )
    op.create_index(
        "ux_notification_messages_dedupe",
        "notification_messages",
        ["department_id", "dedupe_key"],
        unique=True,
    )
    op.create_index(
        "ix_notification_messages_fan_out", "notification_messages", ["fanned_out", "created_at"]
    )
    op.create_table(
        "notification_deliveries",
        _department(),
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("message_id", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("last_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("resent_at", UTCDateTime(), nullable=True),
        sa.Column("resent_by", sa.String(32), nullable=True),
    )
    op.create_index(
        "ux_notification_deliveries_target",
        "notification_deliveries",
        ["department_id", "message_id", "target"],
        unique=True,
    )
    op.create_index(
        "ix_notification_deliveries_due", "notification_deliveries", ["state", "next_attempt_at"]
    )
    op.create_index(
        "ix_notification_deliveries_state",
        "notification_deliveries",
        ["department_id", "state", "id"],
    )
    op.create_table(
        "points_expiries",
        _department(),
        sa.Column("campaign_id", sa.String(32), sa.ForeignKey("campaigns.id"), primary_key=True),
        sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("reminded_at", UTCDateTime(), nullable=True),
        sa.Column("reminded_points", sa.Integer(), nullable=True),
        sa.Column("expired_at", UTCDateTime(), nullable=True),
        sa.Column("expired_points", sa.Integer(), nullable=True),
        sa.Column("ledger_seq", sa.BigInteger(), nullable=True),
    )
    _create_triggers()


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for name, (table, *_) in TRIGGERS.items():
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + (f" ON {table}" if postgres else ""))
        if postgres:
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    op.drop_table("points_expiries")
    op.drop_table("notification_deliveries")
    op.drop_table("notification_messages")
    op.drop_table("notification_channels")
    # recreate="never": SQLite (3.35+) drops the columns in place; recreating `campaigns`
    # would drop a table that drop-offs reference while foreign keys are enforced.
    with op.batch_alter_table("campaigns", recreate="never") as batch:
        batch.drop_column("expiry_done_at")
        batch.drop_column("expiry_reminded_at")
        batch.drop_column("points_expire_days")
        batch.drop_column("points_expire_at")
    with op.batch_alter_table("users", recreate="never") as batch:
        batch.drop_column("email_opt_out")
        batch.drop_column("email")
