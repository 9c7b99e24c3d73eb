"""Reports: what a department, or the whole platform, achieved in a period.

Every figure is read from rollups (`rollups.py`): counters per department and Asia/Shanghai
day that database triggers keep in the transaction of every write, so a report costs days ×
categories, not drop-offs. The part of a day a period covers (a campaign starting or ending
within a day) is recomputed from the raw rows of that part. `exchange reports check`
compares every rollup with its recomputation; a test checks the points figures against the
department's ledger.

The modules, by job: `period` (the period and its parsing), `rollups` (what every write
adds to the counters, the triggers, the check), `months` (the month rows the sweep folds
from the day rows of each ended month, read for whole months), `queries` (the report's queries),
`results` (what a report holds), `co2e` (the CO2e factors, data the operator owns), `units`
(formatting at the edge). The export tables are `api/exports.py`'s.

Units: weights are whole grams, points whole points, money whole fen, CO2e whole grams;
kilograms with one decimal only at the edge (`format_kg`). Rates are per mille (integer).

When things count:
- drop-off figures (statuses, categories, collection points, the day series' drop-offs,
  participants, first-time participants) count drop-offs *logged* in the period, by their
  status now;
- points figures count when the ledger moved the points: issued when a credit was posted
  (the drop-off confirmed, `decided_at`), rejected when voided, spent when an order was
  picked up and released when cancelled or expired (`resolved_at`), expired when the expiry
  sweep moved what was left of a campaign's points to the department's expiry account
  (`points_expiries.expired_at`, exchange/expiry.py). `pending` is the credit
  of drop-offs logged in the period and still awaiting a steward. `held` and `outstanding`
  are balances at the end of the period: points held by open orders, and the posted
  balances of every employee account;
- orders by status count orders placed in the period; products delivered count orders picked
  up in the period, at the value snapshotted into the order;
- members are the active users of the department holding the employee role (now, not as of
  the period); a first-time participant is an employee whose first confirmed drop-off ever
  was logged that day;
- CO2e avoided is each category's confirmed quantity times the factor of the set the report
  names (`co2e`), in force on the period's last day.

The points figures use the times the exchange records (`decided_at`, `resolved_at`), which
are the times of the ledger entries it wrote; only when a writer's clock was behind the
ledger's last entry does the ledger stamp the entry a little later, which matters only for a
period boundary falling in between.
"""

from exchange.reports.co2e import Factor, FactorSet
from exchange.reports.period import MAX_PERIOD_DAYS, Period, resolve_period
from exchange.reports.queries import day_totals, department_report, member_totals, platform_report
from exchange.reports.results import (
    DEPARTMENT_SORT_KEYS,
    PAPER_UNIT,
    CategoryRow,
    DayRow,
    DayTotals,
    DepartmentRow,
    MemberTotals,
    Participation,
    PlatformReport,
    PointsSummary,
    ProductRow,
    Report,
    StationRow,
    StatusCount,
    sort_departments,
)
from exchange.reports.units import format_kg, format_rate, format_yuan, rate_permille

__all__ = [
    "DEPARTMENT_SORT_KEYS",
    "MAX_PERIOD_DAYS",
    "PAPER_UNIT",
    "CategoryRow",
    "DayRow",
    "DayTotals",
    "DepartmentRow",
    "Factor",
    "FactorSet",
    "MemberTotals",
    "Participation",
    "Period",
    "PlatformReport",
    "PointsSummary",
    "ProductRow",
    "Report",
    "StationRow",
    "StatusCount",
    "day_totals",
    "department_report",
    "format_kg",
    "format_rate",
    "format_yuan",
    "member_totals",
    "platform_report",
    "rate_permille",
    "resolve_period",
    "sort_departments",
]
