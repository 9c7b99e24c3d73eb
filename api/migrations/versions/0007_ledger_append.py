"""Ledger: one-round-trip append on PostgreSQL (ledger_append and its encoder).

``ledger_append`` locks the ledger's head, checks the idempotency key and the rules, and
writes the entry, both accounts' counters, the Merkle nodes, the open-pending row and the new
head, all in one call: a department's writers wait on its head for one round trip plus the
commit. It writes nothing and returns no row when the request is anything but a plain
append (a replay of the key, or a refusal); the Python path in ``ledger/transfers.py`` then
runs under the lock already held and says precisely why. ``ledger_entry_json`` produces the
same canonical bytes as ``ledger.encoding.encode_entry`` (tests compare them).

SQLite has no such function: ledger/transfers.py writes there in Python.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# RFC 8785 for our entries: keys in order, integers in plain decimal, strings through
# to_json, whose escapes (\" \\ \b \f \n \r \t, \u00xx lowercase for the other controls,
# everything else as itself) are exactly Python's json with ensure_ascii=False.
ENTRY_JSON = r"""
CREATE FUNCTION ledger_entry_json(e ledger_entries) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
SELECT '{"actor":' || to_json(e.actor::text)::text
    || ',"amount":' || e.amount::text
    || ',"credit_account":' || to_json(e.credit_account::text)::text
    || ',"credit_after":[' || e.cr_debits_pending::text || ',' || e.cr_debits_posted::text
    || ',' || e.cr_credits_pending::text || ',' || e.cr_credits_posted::text
    || '],"credit_flags":' || e.credit_flags::text
    || ',"debit_account":' || to_json(e.debit_account::text)::text
    || ',"debit_after":[' || e.dr_debits_pending::text || ',' || e.dr_debits_posted::text
    || ',' || e.dr_credits_pending::text || ',' || e.dr_credits_posted::text
    || '],"debit_flags":' || e.debit_flags::text
    || ',"expires_at":' || coalesce(e.expires_at_us::text, 'null')
    || ',"idempotency_key":' || to_json(e.idempotency_key::text)::text
    || ',"kind":' || to_json(e.kind::text)::text
    || ',"ledger_id":' || to_json(e.ledger_id::text)::text
    || ',"ref_seq":' || coalesce(e.ref_seq::text, 'null')
    || ',"reference":' || to_json(e.reference::text)::text
    || ',"seq":' || e.seq::text
    || ',"time":' || e.time_us::text
    || ',"version":1}'
$$
"""

APPEND = r"""
CREATE FUNCTION ledger_append(
    p_lid varchar, p_key varchar, p_actor varchar, p_kind varchar,
    p_debit varchar, p_credit varchar, p_amount bigint, p_reference varchar,
    p_ref_seq bigint, p_expires_at_us bigint, p_now_us bigint
) RETURNS SETOF ledger_entries
LANGUAGE plpgsql AS $$
DECLARE
    h ledger_heads%ROWTYPE;
    e ledger_entries%ROWTYPE;
    r ledger_entries%ROWTYPE;
    d ledger_accounts%ROWTYPE;
    c ledger_accounts%ROWTYPE;
    open_exp bigint;
    dd bigint[];  -- deltas of (debits_pending, debits_posted, credits_pending, credits_posted)
    cd bigint[];
    node bytea;
    fr bytea;
    lvl int := 0;
    levels int[];
    idxs bigint[];
    hashes bytea[];
BEGIN
    -- Every return without a row below is "not a plain append": nothing is written.
    SELECT * INTO h FROM ledger_heads WHERE ledger_id = p_lid FOR UPDATE;
    IF NOT FOUND THEN RETURN; END IF;
    -- Started after the lock was granted: sees every earlier writer's commit.
    PERFORM 1 FROM ledger_entries WHERE ledger_id = p_lid AND idempotency_key = p_key;
    IF FOUND THEN RETURN; END IF;

    e.ledger_id := p_lid;
    e.seq := h.size + 1;
    e.kind := p_kind;
    e.time_us := greatest(p_now_us, h.last_time_us);
    e.actor := p_actor;
    e.idempotency_key := p_key;
    e.ref_seq := p_ref_seq;
    IF p_kind IN ('direct', 'pending') THEN
        e.debit_account := p_debit;
        e.credit_account := p_credit;
        e.amount := p_amount;
        e.reference := p_reference;
        IF p_kind = 'direct' THEN
            dd := ARRAY[0, p_amount, 0, 0];
            cd := ARRAY[0, 0, 0, p_amount];
        ELSE
            IF p_expires_at_us IS NOT NULL AND p_expires_at_us <= e.time_us THEN RETURN; END IF;
            e.expires_at_us := p_expires_at_us;
            dd := ARRAY[p_amount, 0, 0, 0];
            cd := ARRAY[0, 0, p_amount, 0];
        END IF;
    ELSE
        SELECT * INTO r FROM ledger_entries WHERE ledger_id = p_lid AND seq = p_ref_seq;
        IF NOT FOUND THEN RETURN; END IF;
        e.reference := coalesce(p_reference, r.reference);
        IF p_kind IN ('post', 'void') THEN
            IF r.kind <> 'pending' THEN RETURN; END IF;
            SELECT expires_at_us INTO open_exp FROM ledger_open_pendings
                WHERE ledger_id = p_lid AND seq = p_ref_seq;
            IF NOT FOUND THEN RETURN; END IF;
            e.debit_account := r.debit_account;
            e.credit_account := r.credit_account;
            IF p_kind = 'post' THEN
                IF open_exp IS NOT NULL AND e.time_us >= open_exp THEN RETURN; END IF;
                e.amount := coalesce(p_amount, r.amount);
                IF e.amount > r.amount THEN RETURN; END IF;
                dd := ARRAY[-r.amount, e.amount, 0, 0];
                cd := ARRAY[0, 0, -r.amount, e.amount];
            ELSE
                e.amount := r.amount;
                dd := ARRAY[-r.amount, 0, 0, 0];
                cd := ARRAY[0, 0, -r.amount, 0];
            END IF;
        ELSIF p_kind = 'reversal' THEN
            IF r.kind NOT IN ('direct', 'post') THEN RETURN; END IF;
            PERFORM 1 FROM ledger_entries WHERE ledger_id = p_lid AND ref_seq = p_ref_seq;
            IF FOUND THEN RETURN; END IF;
            e.debit_account := r.credit_account;
            e.credit_account := r.debit_account;
            e.amount := r.amount;
            dd := ARRAY[0, r.amount, 0, 0];
            cd := ARRAY[0, 0, 0, r.amount];
        ELSE
            RETURN;
        END IF;
    END IF;

    SELECT * INTO d FROM ledger_accounts WHERE ledger_id = p_lid AND code = e.debit_account;
    IF NOT FOUND THEN RETURN; END IF;
    SELECT * INTO c FROM ledger_accounts WHERE ledger_id = p_lid AND code = e.credit_account;
    IF NOT FOUND THEN RETURN; END IF;
    e.debit_flags := d.flags;
    e.credit_flags := c.flags;
    e.dr_debits_pending := d.debits_pending + dd[1];
    e.dr_debits_posted := d.debits_posted + dd[2];
    e.dr_credits_pending := d.credits_pending + dd[3];
    e.dr_credits_posted := d.credits_posted + dd[4];
    e.cr_debits_pending := c.debits_pending + cd[1];
    e.cr_debits_posted := c.debits_posted + cd[2];
    e.cr_credits_pending := c.credits_pending + cd[3];
    e.cr_credits_posted := c.credits_posted + cd[4];
    -- The flags (1: debits must not exceed credits, 2: the mirror) and the 2^53 cap.
    IF d.flags & 1 <> 0 AND e.dr_debits_pending + e.dr_debits_posted > e.dr_credits_posted
       OR d.flags & 2 <> 0 AND e.dr_credits_pending + e.dr_credits_posted > e.dr_debits_posted
       OR c.flags & 1 <> 0 AND e.cr_debits_pending + e.cr_debits_posted > e.cr_credits_posted
       OR c.flags & 2 <> 0 AND e.cr_credits_pending + e.cr_credits_posted > e.cr_debits_posted
       OR greatest(e.dr_debits_pending, e.dr_debits_posted, e.dr_credits_pending,
                   e.dr_credits_posted, e.cr_debits_pending, e.cr_debits_posted,
                   e.cr_credits_pending, e.cr_credits_posted) > 9007199254740991
    THEN
        RETURN;
    END IF;

    -- RFC 9162 leaf, then merge it into the frontier, storing every subtree it completes.
    node := sha256(decode('00', 'hex') || convert_to(ledger_entry_json(e), 'UTF8'));
    fr := h.frontier;
    levels := ARRAY[0];
    idxs := ARRAY[h.size];
    hashes := ARRAY[node];
    WHILE (h.size >> lvl) & 1 = 1 LOOP
        node := sha256(decode('01', 'hex') || substr(fr, length(fr) - 31, 32) || node);
        fr := substr(fr, 1, length(fr) - 32);
        lvl := lvl + 1;
        levels := levels || lvl;
        idxs := idxs || (h.size >> lvl);
        hashes := hashes || node;
    END LOOP;

    UPDATE ledger_accounts SET debits_pending = e.dr_debits_pending,
        debits_posted = e.dr_debits_posted, credits_pending = e.dr_credits_pending,
        credits_posted = e.dr_credits_posted
        WHERE ledger_id = p_lid AND code = e.debit_account;
    UPDATE ledger_accounts SET debits_pending = e.cr_debits_pending,
        debits_posted = e.cr_debits_posted, credits_pending = e.cr_credits_pending,
        credits_posted = e.cr_credits_posted
        WHERE ledger_id = p_lid AND code = e.credit_account;
    INSERT INTO ledger_entries VALUES (e.*);
    INSERT INTO ledger_merkle_nodes (ledger_id, level, idx, hash)
        SELECT p_lid, * FROM unnest(levels, idxs, hashes);
    IF p_kind = 'pending' THEN
        INSERT INTO ledger_open_pendings (ledger_id, seq, expires_at_us)
            VALUES (p_lid, e.seq, e.expires_at_us);
    ELSIF p_kind IN ('post', 'void') THEN
        DELETE FROM ledger_open_pendings WHERE ledger_id = p_lid AND seq = p_ref_seq;
    END IF;
    UPDATE ledger_heads SET size = e.seq, frontier = fr || node, last_time_us = e.time_us
        WHERE ledger_id = p_lid;
    RETURN NEXT e;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # exec_driver_sql: the bodies hold ':' and '%' that are not bind parameters.
    op.get_bind().exec_driver_sql(ENTRY_JSON)
    op.get_bind().exec_driver_sql(APPEND)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "DROP FUNCTION IF EXISTS ledger_append(varchar, varchar, varchar, varchar, varchar,"
        " varchar, bigint, varchar, bigint, bigint, bigint)"
    )
    op.execute("DROP FUNCTION IF EXISTS ledger_entry_json(ledger_entries)")
