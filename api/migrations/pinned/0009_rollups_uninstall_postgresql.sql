-- Migration 0009's rollups (uninstall, postgresql), as exchange/reports/rollups.py rendered them then;
-- pinned, because later migrations change the definitions. Statements are separated by
-- the line `-- next statement`.

DROP FUNCTION IF EXISTS report_rollup_dropoffs() CASCADE

-- next statement

DROP FUNCTION IF EXISTS report_rollup_orders() CASCADE
