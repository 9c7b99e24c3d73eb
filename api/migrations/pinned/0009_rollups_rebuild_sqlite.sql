-- Migration 0009's rollups (rebuild, sqlite), as exchange/reports/rollups.py rendered them then;
-- pinned, because later migrations change the definitions. Statements are separated by
-- the line `-- next statement`.

DELETE FROM report_dropoff_days

-- next statement

INSERT INTO report_dropoff_days (department_id, category, campaign_id, day, pending_count, pending_quantity, pending_points, confirmed_count, confirmed_quantity, confirmed_points, rejected_count, rejected_quantity, rejected_points) SELECT department_id, category, campaign_id, day, sum(pending_count) AS pending_count, sum(pending_quantity) AS pending_quantity, sum(pending_points) AS pending_points, sum(confirmed_count) AS confirmed_count, sum(confirmed_quantity) AS confirmed_quantity, sum(confirmed_points) AS confirmed_points, sum(rejected_count) AS rejected_count, sum(rejected_quantity) AS rejected_quantity, sum(rejected_points) AS rejected_points FROM (SELECT r.department_id AS department_id, r.category AS category, r.campaign_id AS campaign_id, r.local_day AS day, CASE WHEN r.status = 'pending' THEN 1 ELSE 0 END AS pending_count, CASE WHEN r.status = 'pending' THEN COALESCE(r.confirmed_quantity, r.quantity) ELSE 0 END AS pending_quantity, CASE WHEN r.status = 'pending' THEN r.points ELSE 0 END AS pending_points, CASE WHEN r.status = 'confirmed' THEN 1 ELSE 0 END AS confirmed_count, CASE WHEN r.status = 'confirmed' THEN COALESCE(r.confirmed_quantity, r.quantity) ELSE 0 END AS confirmed_quantity, CASE WHEN r.status = 'confirmed' THEN r.points ELSE 0 END AS confirmed_points, CASE WHEN r.status = 'rejected' THEN 1 ELSE 0 END AS rejected_count, CASE WHEN r.status = 'rejected' THEN COALESCE(r.confirmed_quantity, r.quantity) ELSE 0 END AS rejected_quantity, CASE WHEN r.status = 'rejected' THEN r.points ELSE 0 END AS rejected_points FROM dropoffs AS r WHERE 1 = 1) AS c GROUP BY department_id, category, campaign_id, day

-- next statement

DELETE FROM report_station_days

-- next statement

INSERT INTO report_station_days (department_id, station_id, day, dropoffs, confirmed, paper_grams, items, points) SELECT department_id, station_id, day, sum(dropoffs) AS dropoffs, sum(confirmed) AS confirmed, sum(paper_grams) AS paper_grams, sum(items) AS items, sum(points) AS points FROM (SELECT r.department_id AS department_id, r.station_id AS station_id, r.local_day AS day, 1 AS dropoffs, CASE WHEN r.status = 'confirmed' THEN 1 ELSE 0 END AS confirmed, CASE WHEN r.status = 'confirmed' AND r.unit = 'g' THEN COALESCE(r.confirmed_quantity, r.quantity) ELSE 0 END AS paper_grams, CASE WHEN r.status = 'confirmed' AND r.unit <> 'g' THEN COALESCE(r.confirmed_quantity, r.quantity) ELSE 0 END AS items, CASE WHEN r.status = 'confirmed' THEN r.points ELSE 0 END AS points FROM dropoffs AS r WHERE 1 = 1) AS c GROUP BY department_id, station_id, day

-- next statement

DELETE FROM report_days

-- next statement

INSERT INTO report_days (department_id, day, dropoffs, dropoffs_confirmed, paper_grams, items, points_issued, points_rejected, points_spent, points_released, orders_reserved, orders_reserved_points, orders_fulfilled, orders_fulfilled_points, orders_cancelled, orders_cancelled_points, orders_expired, orders_expired_points) SELECT department_id, day, sum(dropoffs) AS dropoffs, sum(dropoffs_confirmed) AS dropoffs_confirmed, sum(paper_grams) AS paper_grams, sum(items) AS items, sum(points_issued) AS points_issued, sum(points_rejected) AS points_rejected, sum(points_spent) AS points_spent, sum(points_released) AS points_released, sum(orders_reserved) AS orders_reserved, sum(orders_reserved_points) AS orders_reserved_points, sum(orders_fulfilled) AS orders_fulfilled, sum(orders_fulfilled_points) AS orders_fulfilled_points, sum(orders_cancelled) AS orders_cancelled, sum(orders_cancelled_points) AS orders_cancelled_points, sum(orders_expired) AS orders_expired, sum(orders_expired_points) AS orders_expired_points FROM (SELECT r.department_id AS department_id, r.local_day AS day, 1 AS dropoffs, CASE WHEN r.status = 'confirmed' THEN 1 ELSE 0 END AS dropoffs_confirmed, CASE WHEN r.status = 'confirmed' AND r.unit = 'g' THEN COALESCE(r.confirmed_quantity, r.quantity) ELSE 0 END AS paper_grams, CASE WHEN r.status = 'confirmed' AND r.unit <> 'g' THEN COALESCE(r.confirmed_quantity, r.quantity) ELSE 0 END AS items, 0 AS points_issued, 0 AS points_rejected, 0 AS points_spent, 0 AS points_released, 0 AS orders_reserved, 0 AS orders_reserved_points, 0 AS orders_fulfilled, 0 AS orders_fulfilled_points, 0 AS orders_cancelled, 0 AS orders_cancelled_points, 0 AS orders_expired, 0 AS orders_expired_points FROM dropoffs AS r WHERE 1 = 1 UNION ALL SELECT r.department_id AS department_id, date(r.decided_at, '+8 hours') AS day, 0 AS dropoffs, 0 AS dropoffs_confirmed, 0 AS paper_grams, 0 AS items, CASE WHEN r.status = 'confirmed' THEN r.points ELSE 0 END AS points_issued, CASE WHEN r.status = 'rejected' THEN r.points ELSE 0 END AS points_rejected, 0 AS points_spent, 0 AS points_released, 0 AS orders_reserved, 0 AS orders_reserved_points, 0 AS orders_fulfilled, 0 AS orders_fulfilled_points, 0 AS orders_cancelled, 0 AS orders_cancelled_points, 0 AS orders_expired, 0 AS orders_expired_points FROM dropoffs AS r WHERE r.decided_at IS NOT NULL UNION ALL SELECT r.department_id AS department_id, date(r.created_at, '+8 hours') AS day, 0 AS dropoffs, 0 AS dropoffs_confirmed, 0 AS paper_grams, 0 AS items, 0 AS points_issued, 0 AS points_rejected, 0 AS points_spent, 0 AS points_released, CASE WHEN r.status = 'reserved' THEN 1 ELSE 0 END AS orders_reserved, CASE WHEN r.status = 'reserved' THEN r.points ELSE 0 END AS orders_reserved_points, CASE WHEN r.status = 'fulfilled' THEN 1 ELSE 0 END AS orders_fulfilled, CASE WHEN r.status = 'fulfilled' THEN r.points ELSE 0 END AS orders_fulfilled_points, CASE WHEN r.status = 'cancelled' THEN 1 ELSE 0 END AS orders_cancelled, CASE WHEN r.status = 'cancelled' THEN r.points ELSE 0 END AS orders_cancelled_points, CASE WHEN r.status = 'expired' THEN 1 ELSE 0 END AS orders_expired, CASE WHEN r.status = 'expired' THEN r.points ELSE 0 END AS orders_expired_points FROM orders AS r WHERE 1 = 1 UNION ALL SELECT r.department_id AS department_id, date(r.resolved_at, '+8 hours') AS day, 0 AS dropoffs, 0 AS dropoffs_confirmed, 0 AS paper_grams, 0 AS items, 0 AS points_issued, 0 AS points_rejected, CASE WHEN r.status = 'fulfilled' THEN r.points ELSE 0 END AS points_spent, CASE WHEN r.status IN ('cancelled', 'expired') THEN r.points ELSE 0 END AS points_released, 0 AS orders_reserved, 0 AS orders_reserved_points, 0 AS orders_fulfilled, 0 AS orders_fulfilled_points, 0 AS orders_cancelled, 0 AS orders_cancelled_points, 0 AS orders_expired, 0 AS orders_expired_points FROM orders AS r WHERE r.resolved_at IS NOT NULL) AS c GROUP BY department_id, day

-- next statement

DELETE FROM report_product_days

-- next statement

INSERT INTO report_product_days (department_id, product_id, day, picked_up, quantity, points, value_fen, product_name, product_unit) SELECT department_id, product_id, day, sum(picked_up) AS picked_up, sum(quantity) AS quantity, sum(points) AS points, sum(value_fen) AS value_fen, max(product_name) AS product_name, max(product_unit) AS product_unit FROM (SELECT r.department_id AS department_id, r.product_id AS product_id, date(r.resolved_at, '+8 hours') AS day, 1 AS picked_up, r.quantity AS quantity, r.points AS points, r.value_fen AS value_fen, r.product_name AS product_name, r.product_unit AS product_unit FROM orders AS r WHERE r.status = 'fulfilled' AND r.resolved_at IS NOT NULL) AS c GROUP BY department_id, product_id, day

-- next statement

DELETE FROM report_participants

-- next statement

INSERT INTO report_participants (department_id, span, start_day, user_id, dropoffs, orders) SELECT department_id, span, start_day, user_id, sum(dropoffs) AS dropoffs, sum(orders) AS orders FROM (SELECT r.department_id AS department_id, 'day' AS span, r.local_day AS start_day, r.user_id AS user_id, 1 AS dropoffs, 0 AS orders FROM dropoffs AS r WHERE r.status = 'confirmed' UNION ALL SELECT r.department_id AS department_id, 'month' AS span, date(r.local_day, 'start of month') AS start_day, r.user_id AS user_id, 1 AS dropoffs, 0 AS orders FROM dropoffs AS r WHERE r.status = 'confirmed' UNION ALL SELECT r.department_id AS department_id, 'year' AS span, date(r.local_day, 'start of year') AS start_day, r.user_id AS user_id, 1 AS dropoffs, 0 AS orders FROM dropoffs AS r WHERE r.status = 'confirmed' UNION ALL SELECT r.department_id AS department_id, 'day' AS span, date(r.created_at, '+8 hours') AS start_day, r.user_id AS user_id, 0 AS dropoffs, 1 AS orders FROM orders AS r WHERE 1 = 1 UNION ALL SELECT r.department_id AS department_id, 'month' AS span, date(date(r.created_at, '+8 hours'), 'start of month') AS start_day, r.user_id AS user_id, 0 AS dropoffs, 1 AS orders FROM orders AS r WHERE 1 = 1 UNION ALL SELECT r.department_id AS department_id, 'year' AS span, date(date(r.created_at, '+8 hours'), 'start of year') AS start_day, r.user_id AS user_id, 0 AS dropoffs, 1 AS orders FROM orders AS r WHERE 1 = 1) AS c GROUP BY department_id, span, start_day, user_id

-- next statement

DELETE FROM report_first_dropoffs

-- next statement

INSERT INTO report_first_dropoffs (department_id, user_id, first_day) SELECT department_id, user_id, min(first_day) AS first_day FROM (SELECT r.department_id AS department_id, r.user_id AS user_id, r.local_day AS first_day FROM dropoffs AS r WHERE r.status = 'confirmed') AS c GROUP BY department_id, user_id
