"""Reports: rollups kept by triggers, CO2e factors as data, campaigns that remanufacture.

- Rollup tables (per department and Asia/Shanghai day: drop-offs by status, category and
  collection point; orders by status and product; points by movement; participation), the
  triggers on `dropoffs` and `orders` that keep them in every write's transaction, and their
  backfill from the rows already there. The triggers and the backfill were rendered from the
  definitions in exchange/reports/rollups.py; migration 0014 changed those, so what this one
  rendered is pinned in api/migrations/pinned/0009_rollups_*.sql.
- CO2e factor sets (every change a new set, with who and when) and the default set, each
  factor citing its source and saying "to confirm" where its number was not read in it.
- `campaigns.cartridges_remanufactured`, and the factor set a saved summary was drafted with.

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence
from datetime import UTC, date, datetime

import sqlalchemy as sa
from alembic import op

from api.migrations.pinned import statements as pinned
from catalog.models import UTCDateTime

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _counters(*names: str) -> list[sa.Column]:  # type: ignore[type-arg]
    return [sa.Column(name, sa.BigInteger(), nullable=False) for name in names]


def _key(*columns: tuple[str, int | None]) -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column(name, sa.String(length) if length else sa.Date(), primary_key=True)
        for name, length in columns
    ]


DEPARTMENT_DAY = (("department_id", 32), ("day", None))
STATUS_COUNTERS = [
    f"{status}_{what}"
    for status in ("pending", "confirmed", "rejected")
    for what in ("count", "quantity", "points")
]
ORDER_COUNTERS = [
    name
    for status in ("reserved", "fulfilled", "cancelled", "expired")
    for name in (f"orders_{status}", f"orders_{status}_points")
]

# The defaults: what each figure is, where it comes from, and what was not read.
WARM = "US EPA, Waste Reduction Model (WARM)"
DEFAULT_FACTORS = [
    {
        "category": "paper",
        "basis": "kg",
        "grams": 2987,
        "baseline": "recycling pathway alone (landfill not subtracted)",
        "applies_to": "all",
        "publication": f"{WARM}: Documentation, Paper Products chapter (newspaper)",
        "version": "Version 15, November 2020",
        "exhibit": "to confirm",
        "page": "to confirm",
        "url": "https://www.epa.gov/warm",
        "note_en": "WARM's net emission factor for recycling newspaper, -2.71 MTCO2E per short "
        "ton (2.71 t x 1,000,000 g / 907.18474 kg = 2,987 g per kg), as earlier versions of "
        "this service quoted it; the exhibit was not re-read. WARM counts what recycling "
        "avoids as the difference between a baseline pathway and recycling, so the saving "
        "against landfill is this figure less WARM's landfilling factor for newspaper (same "
        "chapter), which could not be read when this default was written. Until an "
        "administrator enters that difference, this figure overstates the saving against "
        "landfill.",
        "note_zh": "WARM对报纸回收途径的净排放因子为每短吨-2.71公吨二氧化碳当量（2.71吨×1,000,000克"
        "÷907.18474千克=每千克2,987克），沿用本系统早期版本的引用，未重新核对原文图表。WARM把回收"
        "避免的排放计为基准途径与回收途径之差，因此相对填埋的减排量应为本数减去WARM同一章中报纸填埋"
        "途径的因子；编写本默认值时未能读到该因子。在管理员录入两者之差以前，本数高估了相对填埋的"
        "减排量。",
        "to_confirm": True,
    },
    {
        "category": "ink_cartridge",
        "basis": "item",
        "grams": None,
        "baseline": "",
        "applies_to": "all",
        "publication": "",
        "version": "",
        "exhibit": "",
        "page": "",
        "url": "",
        "note_en": "No sourced figure for ink cartridges: the remanufacturing study used for "
        "toner cartridges does not cover them. Their number is reported; no CO2e is claimed.",
        "note_zh": "墨盒暂无有出处的因子：硒鼓所用的再制造研究不涉及墨盒。只报告数量，不计减排量。",
        "to_confirm": False,
    },
    {
        "category": "toner_cartridge",
        "basis": "item",
        "grams": 2500,
        "baseline": "a new cartridge (remanufactured instead)",
        "applies_to": "remanufactured",
        "publication": "Centre for Remanufacturing and Reuse (CRR): carbon footprint of "
        "remanufactured toner cartridges, study summary",
        "version": "",
        "exhibit": "study summary",
        "page": "web summary (report 159)",
        "url": "http://www.remanufacturing.org.uk/resource-detail.php?report=159",
        "note_en": "About 2.5 kg CO2 saved per cartridge remanufactured rather than made new "
        "(CRR's summary of the study; a cartridge is remanufactured 3.5 times on average). "
        "CRR's later study (report 265) puts 3.5 remanufactured lives at 22.8 kg CO2e against "
        "35 kg for 4.5 new cartridges. Applied only to campaigns whose cartridges go to "
        "remanufacturing.",
        "note_zh": "每个硒鼓再制造（而非新造）约减少2.5千克二氧化碳"
        "（CRR研究摘要；硒鼓平均再制造3.5次）。CRR后续研究（报告265）：3.5次再制造共22.8千克二氧化碳当量，相当于4.5个新硒鼓的35千克。"
        "仅用于硒鼓送去再制造的活动。",
        "to_confirm": False,
    },
    *[
        {
            "category": code,
            "basis": "item",
            "grams": None,
            "baseline": "landfill",
            "applies_to": "all",
            "publication": f"{WARM} (electronics) x UNU-KEY average mass per item "
            "(Statistics Netherlands / United Nations University, htbl_Key_Weight)",
            "version": "WARM Version 16",
            "exhibit": "to confirm",
            "page": "to confirm",
            "url": "https://www.epa.gov/warm",
            "note_en": f"Method: grams per item = WARM's electronics factor (per short ton, "
            f"converted to grams per kg) x the UNU-KEY mass of such an item ({mass}). Neither "
            "number could be read in its source when this default was written, so no CO2e is "
            "claimed until an administrator enters the product.",
            "note_zh": "方法：每件克数=WARM电子产品因子（每短吨，折算为每千克克数）"
            f"×UNU-KEY该类产品每件平均质量（{mass_zh}）。编写本默认值时两者均未能在原文中核对，在管理员录入乘积以前"
            "不计减排量。",
            "to_confirm": True,
        }
        for code, mass, mass_zh in (
            ("phone", "mobile phone, 0.09 kg", "手机0.09千克"),
            ("charger_cable", "small IT equipment, 0.40 kg", "小型IT设备0.40千克"),
            ("keyboard_mouse", "small IT equipment, 0.40 kg", "小型IT设备0.40千克"),
            ("other_small_device", "small IT equipment, 0.40 kg", "小型IT设备0.40千克"),
        )
    ],
]
DEFAULT_SET = "default"


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.add_column(
        "campaigns",
        sa.Column(
            "cartridges_remanufactured", sa.Boolean(), nullable=False, server_default=sa.false()
        ),
    )
    op.add_column("summaries", sa.Column("co2e_factor_set", sa.String(32), nullable=True))

    op.create_table(
        "report_dropoff_days",
        *_key(("department_id", 32), ("category", 32), ("campaign_id", 32), ("day", None)),
        *_counters(*STATUS_COUNTERS),
    )
    op.create_table(
        "report_station_days",
        *_key(("department_id", 32), ("station_id", 32), ("day", None)),
        *_counters("dropoffs", "confirmed", "paper_grams", "items", "points"),
    )
    op.create_table(
        "report_days",
        *_key(*DEPARTMENT_DAY),
        *_counters(
            "dropoffs",
            "dropoffs_confirmed",
            "paper_grams",
            "items",
            "points_issued",
            "points_rejected",
            "points_spent",
            "points_released",
            *ORDER_COUNTERS,
        ),
    )
    op.create_table(
        "report_product_days",
        *_key(("department_id", 32), ("product_id", 32), ("day", None)),
        *_counters("picked_up", "quantity", "points", "value_fen"),
        sa.Column("product_name", sa.String(100), nullable=False),
        sa.Column("product_unit", sa.String(50), nullable=False),
    )
    op.create_table(
        "report_participants",
        *_key(("department_id", 32), ("span", 8), ("start_day", None), ("user_id", 32)),
        *_counters("dropoffs", "orders"),
    )
    op.create_table(
        "report_first_dropoffs",
        *_key(("department_id", 32), ("user_id", 32)),
        sa.Column("first_day", sa.Date(), nullable=False),
    )
    op.create_index(
        "ix_report_first_dropoffs_day", "report_first_dropoffs", ["department_id", "first_day"]
    )
    for what in ("install", "rebuild"):
        for statement in pinned(f"0009_rollups_{what}", dialect):
            op.get_bind().exec_driver_sql(statement)

    sets = op.create_table(
        "co2e_factor_sets",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(32), nullable=False),
        sa.Column("note", sa.String(300), nullable=False),
    )
    factors = op.create_table(
        "co2e_factors",
        sa.Column("set_id", sa.String(32), sa.ForeignKey("co2e_factor_sets.id"), primary_key=True),
        sa.Column("category", sa.String(32), primary_key=True),
        sa.Column("valid_from", sa.Date(), primary_key=True),
        sa.Column("basis", sa.String(8), nullable=False),
        sa.Column("grams", sa.Integer(), nullable=True),
        sa.Column("baseline", sa.String(100), nullable=False),
        sa.Column("applies_to", sa.String(16), nullable=False),
        sa.Column("publication", sa.String(300), nullable=False),
        sa.Column("version", sa.String(100), nullable=False),
        sa.Column("exhibit", sa.String(100), nullable=False),
        sa.Column("page", sa.String(50), nullable=False),
        sa.Column("url", sa.String(500), nullable=False),
        sa.Column("note_zh", sa.String(1000), nullable=False),
        sa.Column("note_en", sa.String(1000), nullable=False),
        sa.Column("to_confirm", sa.Boolean(), nullable=False),
    )
    op.bulk_insert(
        sets,
        [
            {
                "id": DEFAULT_SET,
                "created_at": datetime(2000, 1, 1, tzinfo=UTC),
                "created_by": "migration",
                "note": "The defaults shipped with migration 0009.",
            }
        ],
    )
    # Valid for every campaign the service accepts (2000-2100).
    op.bulk_insert(
        factors,
        [{"set_id": DEFAULT_SET, "valid_from": date(2000, 1, 1), **f} for f in DEFAULT_FACTORS],
    )


def downgrade() -> None:
    for statement in pinned("0009_rollups_uninstall", op.get_bind().dialect.name):
        op.get_bind().exec_driver_sql(statement)
    op.drop_table("co2e_factors")
    op.drop_table("co2e_factor_sets")
    op.drop_index("ix_report_first_dropoffs_day", table_name="report_first_dropoffs")
    for table in (
        "report_first_dropoffs",
        "report_participants",
        "report_product_days",
        "report_days",
        "report_station_days",
        "report_dropoff_days",
    ):
        op.drop_table(table)
    # Both databases drop a column in place (SQLite since 3.35), without copying the table.
    op.get_bind().exec_driver_sql("ALTER TABLE summaries DROP COLUMN co2e_factor_set")
    op.get_bind().exec_driver_sql("ALTER TABLE campaigns DROP COLUMN cartridges_remanufactured")
