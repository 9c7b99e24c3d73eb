-- Migration 0009's rollups (uninstall, sqlite), as exchange/reports/rollups.py rendered them then;
-- pinned, because later migrations change the definitions. Statements are separated by
-- the line `-- next statement`.

DROP TRIGGER IF EXISTS report_rollup_dropoffs_insert

-- next statement

DROP TRIGGER IF EXISTS report_rollup_dropoffs_update

-- next statement

DROP TRIGGER IF EXISTS report_rollup_dropoffs_delete

-- next statement

DROP TRIGGER IF EXISTS report_rollup_orders_insert

-- next statement

DROP TRIGGER IF EXISTS report_rollup_orders_update

-- next statement

DROP TRIGGER IF EXISTS report_rollup_orders_delete
