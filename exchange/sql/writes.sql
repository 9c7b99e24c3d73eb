-- The exchange's hot writes on PostgreSQL, each one call of one function (exchange/one_call.py).
--
-- Called outside any transaction, a call is its own transaction: the ledger's head, taken
-- by ledger_append near the end, is released by the commit of that same statement, so no
-- round trip and no Python run while a department's writers wait on it.
--
-- A function does a plain write or nothing: for anything else (a replay of the idempotency
-- key, a refusal, a race lost) it raises SQLSTATE CE001, which rolls back whatever it did,
-- and the Python path (the rules SQLite runs) answers the request in a transaction of its
-- own: the original result, or the precise error. The rules here are the happy path of
-- exchange/dropoffs.py, orders.py and pickup.py; they must agree.
--
-- Names of accounts, ledger keys and references, the category's unit and rounding, come in
-- as parameters from Python, so they are written once (exchange/points.py, categories.py).
--
-- Loaded by the migration that last changed it (CREATE OR REPLACE); a test checks the
-- installed functions are these.

CREATE OR REPLACE FUNCTION exchange_decline() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'not a plain write: the Python path answers' USING ERRCODE = 'CE001';
END
$$;


-- Log a drop-off: under the user's drop-off lock, the station, the open campaign and its
-- rate; the key unused; the daily cap; the credit (direct under `auto`, pending under
-- `steward`) on the ledger; the drop-off with its entry's seq.
CREATE OR REPLACE FUNCTION exchange_log_dropoff(
    p_dep varchar, p_uid varchar, p_id varchar, p_key varchar, p_hash varchar,
    p_code varchar, p_category varchar, p_unit varchar, p_quantity integer,
    p_per integer, p_now timestamptz, p_local_day varchar, p_now_us bigint,
    p_lock_class integer, p_debit varchar, p_credit varchar, p_debit_flags integer,
    p_credit_flags integer, p_ledger_key varchar, p_reference varchar
) RETURNS SETOF dropoffs
LANGUAGE plpgsql AS $$
DECLARE
    context record;
    entry ledger_entries%ROWTYPE;
    earned bigint;
    used bigint;
    auto boolean;
    dropoff dropoffs%ROWTYPE;
BEGIN
    -- A user's drop-offs take turns, so the cap's sum sees every earlier one of theirs.
    PERFORM pg_advisory_xact_lock(p_lock_class, hashtext(p_dep || '/' || p_uid));
    SELECT s.id AS station_id, s.department_id AS station_department, s.active,
           c.id AS campaign_id, c.policy, c.daily_cap_points, r.points AS rate
      INTO context
      FROM users u
      LEFT JOIN stations s ON s.code = p_code
      LEFT JOIN campaigns c ON c.id = (
          -- The department's own open campaign wins over a platform-wide one.
          SELECT candidate.id FROM campaigns candidate
           WHERE (candidate.department_id IS NULL OR candidate.department_id = p_dep)
             AND candidate.starts_at <= p_now AND candidate.ends_at > p_now
           ORDER BY candidate.department_id IS NULL
           LIMIT 1)
      LEFT JOIN campaign_rates r ON r.campaign_id = c.id AND r.category = p_category
     WHERE u.id = p_uid;
    IF NOT FOUND OR context.station_id IS NULL OR context.station_department <> p_dep
       OR NOT context.active OR context.campaign_id IS NULL OR context.rate IS NULL THEN
        PERFORM exchange_decline();
    END IF;
    earned := p_quantity::bigint * context.rate / p_per;  -- both positive: division rounds down
    IF earned < 1 THEN PERFORM exchange_decline(); END IF;
    PERFORM 1 FROM dropoffs
     WHERE department_id = p_dep AND user_id = p_uid AND idempotency_key = p_key;
    IF FOUND THEN PERFORM exchange_decline(); END IF;
    SELECT coalesce(sum(earlier.points), 0) INTO used FROM dropoffs earlier
     WHERE earlier.department_id = p_dep AND earlier.user_id = p_uid
       AND earlier.local_day = p_local_day AND earlier.status <> 'rejected';
    IF used + earned > context.daily_cap_points THEN PERFORM exchange_decline(); END IF;

    auto := context.policy = 'auto';
    SELECT * INTO entry FROM ledger_append(p_dep, p_ledger_key, p_uid,
        CASE WHEN auto THEN 'direct' ELSE 'pending' END, p_debit, p_credit, earned,
        p_reference, NULL, NULL, p_now_us, p_debit_flags, p_credit_flags);
    IF entry.seq IS NULL THEN PERFORM exchange_decline(); END IF;
    INSERT INTO dropoffs (department_id, id, user_id, station_id, campaign_id, category, unit,
        quantity, confirmed_quantity, rate_points, points, status, local_day, ledger_seq,
        resolution_seq, adjustment_seq, created_at, decided_at, decided_by, reject_reason,
        idempotency_key, request_hash)
    VALUES (p_dep, p_id, p_uid, context.station_id, context.campaign_id, p_category, p_unit,
        p_quantity, NULL, context.rate, earned,
        CASE WHEN auto THEN 'confirmed' ELSE 'pending' END, p_local_day, entry.seq, NULL, NULL,
        p_now, CASE WHEN auto THEN p_now END, NULL, NULL, p_key, p_hash)
    RETURNING * INTO dropoff;
    RETURN NEXT dropoff;
END
$$;


-- A coordinator's decision on a pending drop-off, as logged (no corrected quantity):
-- `post` its whole pending credit (confirm) or `void` it (reject, with the reason).
CREATE OR REPLACE FUNCTION exchange_decide_dropoff(
    p_dep varchar, p_id varchar, p_actor varchar, p_kind varchar, p_reason varchar,
    p_now timestamptz, p_now_us bigint, p_ledger_key varchar
) RETURNS SETOF dropoffs
LANGUAGE plpgsql AS $$
DECLARE
    dropoff dropoffs%ROWTYPE;
    entry ledger_entries%ROWTYPE;
BEGIN
    SELECT * INTO dropoff FROM dropoffs WHERE department_id = p_dep AND id = p_id FOR UPDATE;
    IF NOT FOUND OR dropoff.status <> 'pending' OR p_kind NOT IN ('post', 'void') THEN
        PERFORM exchange_decline();
    END IF;
    SELECT * INTO entry FROM ledger_append(p_dep, p_ledger_key, p_actor, p_kind, NULL, NULL, NULL,
        NULL, dropoff.ledger_seq, NULL, p_now_us, NULL, NULL);
    IF entry.seq IS NULL THEN PERFORM exchange_decline(); END IF;
    UPDATE dropoffs
       SET status = CASE WHEN p_kind = 'post' THEN 'confirmed' ELSE 'rejected' END,
           confirmed_quantity = CASE WHEN p_kind = 'post' THEN dropoff.quantity END,
           resolution_seq = entry.seq, decided_at = p_now, decided_by = p_actor,
           reject_reason = CASE WHEN p_kind = 'void' THEN p_reason END
     WHERE department_id = p_dep AND id = p_id
    RETURNING * INTO dropoff;
    RETURN NEXT dropoff;
END
$$;


-- Place an order: the key unused; the stock taken with a guarded update (never below
-- zero, the last unit to one buyer); the points held (a pending debit) on the ledger; the
-- order priced as of the stock update. Lock order everywhere: order, product, ledger head.
CREATE OR REPLACE FUNCTION exchange_place_order(
    p_dep varchar, p_uid varchar, p_id varchar, p_key varchar, p_hash varchar,
    p_product varchar, p_quantity integer, p_jti varchar, p_kid varchar,
    p_now timestamptz, p_expires timestamptz, p_now_us bigint,
    p_debit varchar, p_credit varchar, p_debit_flags integer, p_credit_flags integer,
    p_ledger_key varchar, p_reference varchar
) RETURNS SETOF orders
LANGUAGE plpgsql AS $$
DECLARE
    product record;
    entry ledger_entries%ROWTYPE;
    booked orders%ROWTYPE;
BEGIN
    PERFORM 1 FROM orders
     WHERE department_id = p_dep AND user_id = p_uid AND idempotency_key = p_key;
    IF FOUND THEN PERFORM exchange_decline(); END IF;
    UPDATE products SET stock = stock - p_quantity
     WHERE department_id = p_dep AND id = p_product AND active AND stock >= p_quantity
    RETURNING name, unit, price_points, value_fen INTO product;
    IF NOT FOUND THEN PERFORM exchange_decline(); END IF;
    SELECT * INTO entry FROM ledger_append(p_dep, p_ledger_key, p_uid, 'pending', p_debit,
        p_credit, product.price_points::bigint * p_quantity, p_reference, NULL, NULL, p_now_us,
        p_debit_flags, p_credit_flags);
    IF entry.seq IS NULL THEN PERFORM exchange_decline(); END IF;
    -- A concurrent request with the same key waits here for the first to commit, then
    -- declines: the Python path answers it with the first one's order.
    INSERT INTO orders (department_id, id, user_id, product_id, product_name, product_unit,
        unit_price_points, unit_value_fen, quantity, points, value_fen, status, hold_seq,
        resolution_seq, pickup_jti, pickup_kid, created_at, expires_at, resolved_at,
        resolved_by, idempotency_key, request_hash)
    VALUES (p_dep, p_id, p_uid, p_product, product.name, product.unit,
        product.price_points, product.value_fen, p_quantity, product.price_points * p_quantity,
        product.value_fen * p_quantity, 'reserved', entry.seq, NULL, p_jti, p_kid, p_now,
        p_expires, NULL, NULL, p_key, p_hash)
    ON CONFLICT DO NOTHING
    RETURNING * INTO booked;
    IF NOT FOUND THEN PERFORM exchange_decline(); END IF;
    RETURN NEXT booked;
END
$$;


-- Close a reserved order: `post` its hold (picked up, if the token's jti is the order's) or
-- `void` it and return the stock (cancelled by its owner or a coordinator).
CREATE OR REPLACE FUNCTION exchange_resolve_order(
    p_dep varchar, p_id varchar, p_actor varchar, p_kind varchar, p_jti varchar,
    p_owner varchar, p_now timestamptz, p_now_us bigint, p_ledger_key varchar
) RETURNS SETOF orders
LANGUAGE plpgsql AS $$
DECLARE
    booked orders%ROWTYPE;
    entry ledger_entries%ROWTYPE;
BEGIN
    SELECT * INTO booked FROM orders WHERE department_id = p_dep AND id = p_id FOR UPDATE;
    IF NOT FOUND OR booked.status <> 'reserved' OR p_kind NOT IN ('post', 'void')
       OR (p_jti IS NOT NULL AND booked.pickup_jti <> p_jti)
       OR (p_owner IS NOT NULL AND booked.user_id <> p_owner) THEN
        PERFORM exchange_decline();
    END IF;
    IF p_kind = 'void' THEN
        UPDATE products SET stock = stock + booked.quantity
         WHERE department_id = p_dep AND id = booked.product_id;
    END IF;
    SELECT * INTO entry FROM ledger_append(p_dep, p_ledger_key, p_actor, p_kind, NULL, NULL, NULL,
        NULL, booked.hold_seq, NULL, p_now_us, NULL, NULL);
    IF entry.seq IS NULL THEN PERFORM exchange_decline(); END IF;
    UPDATE orders
       SET status = CASE WHEN p_kind = 'post' THEN 'fulfilled' ELSE 'cancelled' END,
           resolution_seq = entry.seq, resolved_at = p_now, resolved_by = p_actor
     WHERE department_id = p_dep AND id = p_id
    RETURNING * INTO booked;
    RETURN NEXT booked;
END
$$;
