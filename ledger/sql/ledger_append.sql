-- ledger_append: one append to a department's log on PostgreSQL, in one call.
--
-- Locks the ledger's head, checks the idempotency key and the rules, sequences the entry
-- (seq = head.size + 1, time never before the last entry's) and writes it, both accounts'
-- counters, the open-pending row and the head. It does not hash: the Merkle tree takes the
-- entry later, in a batch (ledger/integration.py), so the head is held for the least work.
--
-- It writes nothing and returns no row for anything but a plain append (a replay of the key,
-- or a refusal); ledger/transfers.py then runs the Python rules under the lock already held
-- and says precisely why. The Python path is the same rules for SQLite; the two must agree.
--
-- p_debit_flags / p_credit_flags: open that account (and the ledger) with these flags if it
-- is missing; NULL: it must exist. An existing account with other flags is a refusal.
--
-- Loaded by the migration that last changed it (CREATE OR REPLACE); a test checks the
-- installed function is this file and that the constants below are the Python ones.
CREATE OR REPLACE FUNCTION ledger_append(
    p_lid varchar, p_key varchar, p_actor varchar, p_kind varchar,
    p_debit varchar, p_credit varchar, p_amount bigint, p_reference varchar,
    p_ref_seq bigint, p_expires_at_us bigint, p_now_us bigint,
    p_debit_flags integer, p_credit_flags integer
) RETURNS SETOF ledger_entries
LANGUAGE plpgsql AS $$
DECLARE
    -- ledger.accounts.AccountFlags and ledger.encoding.MAX_INT
    debits_must_not_exceed_credits CONSTANT integer := 1;
    credits_must_not_exceed_debits CONSTANT integer := 2;
    max_int CONSTANT bigint := 9007199254740991;
    head ledger_heads%ROWTYPE;
    entry ledger_entries%ROWTYPE;
    referred ledger_entries%ROWTYPE;
    debit_row ledger_accounts%ROWTYPE;
    credit_row ledger_accounts%ROWTYPE;
    open_exp bigint;
    -- changes to (debits_pending, debits_posted, credits_pending, credits_posted)
    debit_delta bigint[];
    credit_delta bigint[];
BEGIN
    SELECT * INTO head FROM ledger_heads WHERE ledger_id = p_lid FOR UPDATE;
    IF NOT FOUND THEN
        IF p_kind NOT IN ('direct', 'pending') OR p_debit_flags IS NULL
           OR p_credit_flags IS NULL THEN
            RETURN;
        END IF;
        -- The ledger's first write: create it (a concurrent first write may win the race).
        INSERT INTO ledger_heads (ledger_id, size, last_time_us) VALUES (p_lid, 0, 0)
            ON CONFLICT DO NOTHING;
        INSERT INTO ledger_trees (ledger_id, size, frontier) VALUES (p_lid, 0, '')
            ON CONFLICT DO NOTHING;
        SELECT * INTO head FROM ledger_heads WHERE ledger_id = p_lid FOR UPDATE;
    END IF;
    -- Every statement below started after the lock was granted: at READ COMMITTED it sees
    -- every earlier holder's commit, so the key check and the balances are exact.
    PERFORM 1 FROM ledger_entries WHERE ledger_id = p_lid AND idempotency_key = p_key;
    IF FOUND THEN RETURN; END IF;

    entry.ledger_id := p_lid;
    entry.seq := head.size + 1;
    entry.kind := p_kind;
    entry.time_us := greatest(p_now_us, head.last_time_us);
    entry.actor := p_actor;
    entry.idempotency_key := p_key;
    entry.ref_seq := p_ref_seq;
    IF p_kind IN ('direct', 'pending') THEN
        entry.debit_account := p_debit;
        entry.credit_account := p_credit;
        entry.amount := p_amount;
        entry.reference := p_reference;
        IF p_kind = 'direct' THEN
            debit_delta := ARRAY[0, p_amount, 0, 0];
            credit_delta := ARRAY[0, 0, 0, p_amount];
        ELSE
            IF p_expires_at_us IS NOT NULL AND p_expires_at_us <= entry.time_us THEN
                RETURN;
            END IF;
            entry.expires_at_us := p_expires_at_us;
            debit_delta := ARRAY[p_amount, 0, 0, 0];
            credit_delta := ARRAY[0, 0, p_amount, 0];
        END IF;
    ELSE
        SELECT * INTO referred FROM ledger_entries WHERE ledger_id = p_lid AND seq = p_ref_seq;
        IF NOT FOUND THEN RETURN; END IF;
        entry.reference := coalesce(p_reference, referred.reference);
        IF p_kind IN ('post', 'void') THEN
            IF referred.kind <> 'pending' THEN RETURN; END IF;
            SELECT expires_at_us INTO open_exp FROM ledger_open_pendings
                WHERE ledger_id = p_lid AND seq = p_ref_seq;
            IF NOT FOUND THEN RETURN; END IF;
            entry.debit_account := referred.debit_account;
            entry.credit_account := referred.credit_account;
            IF p_kind = 'post' THEN
                IF open_exp IS NOT NULL AND entry.time_us >= open_exp THEN RETURN; END IF;
                entry.amount := coalesce(p_amount, referred.amount);
                IF entry.amount > referred.amount THEN RETURN; END IF;
                debit_delta := ARRAY[-referred.amount, entry.amount, 0, 0];
                credit_delta := ARRAY[0, 0, -referred.amount, entry.amount];
            ELSE
                entry.amount := referred.amount;
                debit_delta := ARRAY[-referred.amount, 0, 0, 0];
                credit_delta := ARRAY[0, 0, -referred.amount, 0];
            END IF;
        ELSIF p_kind = 'reversal' THEN
            IF referred.kind NOT IN ('direct', 'post') THEN RETURN; END IF;
            PERFORM 1 FROM ledger_entries WHERE ledger_id = p_lid AND ref_seq = p_ref_seq;
            IF FOUND THEN RETURN; END IF;
            entry.debit_account := referred.credit_account;
            entry.credit_account := referred.debit_account;
            entry.amount := referred.amount;
            debit_delta := ARRAY[0, referred.amount, 0, 0];
            credit_delta := ARRAY[0, 0, 0, referred.amount];
        ELSE
            RETURN;
        END IF;
    END IF;

    SELECT * INTO debit_row FROM ledger_accounts
        WHERE ledger_id = p_lid AND code = entry.debit_account;
    IF NOT FOUND AND p_debit_flags IS NOT NULL AND p_kind IN ('direct', 'pending') THEN
        INSERT INTO ledger_accounts (ledger_id, code, flags, debits_pending, debits_posted,
            credits_pending, credits_posted, created_at_us)
            VALUES (p_lid, entry.debit_account, p_debit_flags, 0, 0, 0, 0, p_now_us)
            ON CONFLICT DO NOTHING;
        SELECT * INTO debit_row FROM ledger_accounts
        WHERE ledger_id = p_lid AND code = entry.debit_account;
    END IF;
    IF NOT FOUND OR debit_row.flags <> coalesce(p_debit_flags, debit_row.flags) THEN
        RETURN;
    END IF;
    SELECT * INTO credit_row FROM ledger_accounts
        WHERE ledger_id = p_lid AND code = entry.credit_account;
    IF NOT FOUND AND p_credit_flags IS NOT NULL AND p_kind IN ('direct', 'pending') THEN
        INSERT INTO ledger_accounts (ledger_id, code, flags, debits_pending, debits_posted,
            credits_pending, credits_posted, created_at_us)
            VALUES (p_lid, entry.credit_account, p_credit_flags, 0, 0, 0, 0, p_now_us)
            ON CONFLICT DO NOTHING;
        SELECT * INTO credit_row FROM ledger_accounts
        WHERE ledger_id = p_lid AND code = entry.credit_account;
    END IF;
    IF NOT FOUND OR credit_row.flags <> coalesce(p_credit_flags, credit_row.flags) THEN
        RETURN;
    END IF;
    entry.debit_flags := debit_row.flags;
    entry.credit_flags := credit_row.flags;
    entry.dr_debits_pending := debit_row.debits_pending + debit_delta[1];
    entry.dr_debits_posted := debit_row.debits_posted + debit_delta[2];
    entry.dr_credits_pending := debit_row.credits_pending + debit_delta[3];
    entry.dr_credits_posted := debit_row.credits_posted + debit_delta[4];
    entry.cr_debits_pending := credit_row.debits_pending + credit_delta[1];
    entry.cr_debits_posted := credit_row.debits_posted + credit_delta[2];
    entry.cr_credits_pending := credit_row.credits_pending + credit_delta[3];
    entry.cr_credits_posted := credit_row.credits_posted + credit_delta[4];
    IF debit_row.flags & debits_must_not_exceed_credits <> 0
           AND entry.dr_debits_pending + entry.dr_debits_posted > entry.dr_credits_posted
       OR debit_row.flags & credits_must_not_exceed_debits <> 0
           AND entry.dr_credits_pending + entry.dr_credits_posted > entry.dr_debits_posted
       OR credit_row.flags & debits_must_not_exceed_credits <> 0
           AND entry.cr_debits_pending + entry.cr_debits_posted > entry.cr_credits_posted
       OR credit_row.flags & credits_must_not_exceed_debits <> 0
           AND entry.cr_credits_pending + entry.cr_credits_posted > entry.cr_debits_posted
       OR greatest(entry.dr_debits_pending, entry.dr_debits_posted, entry.dr_credits_pending,
                   entry.dr_credits_posted, entry.cr_debits_pending, entry.cr_debits_posted,
                   entry.cr_credits_pending, entry.cr_credits_posted) > max_int
    THEN
        RETURN;
    END IF;

    UPDATE ledger_accounts SET debits_pending = entry.dr_debits_pending,
        debits_posted = entry.dr_debits_posted, credits_pending = entry.dr_credits_pending,
        credits_posted = entry.dr_credits_posted
        WHERE ledger_id = p_lid AND code = entry.debit_account;
    UPDATE ledger_accounts SET debits_pending = entry.cr_debits_pending,
        debits_posted = entry.cr_debits_posted, credits_pending = entry.cr_credits_pending,
        credits_posted = entry.cr_credits_posted
        WHERE ledger_id = p_lid AND code = entry.credit_account;
    INSERT INTO ledger_entries VALUES (entry.*);
    IF p_kind = 'pending' THEN
        INSERT INTO ledger_open_pendings (ledger_id, seq, expires_at_us)
            VALUES (p_lid, entry.seq, entry.expires_at_us);
    ELSIF p_kind IN ('post', 'void') THEN
        DELETE FROM ledger_open_pendings WHERE ledger_id = p_lid AND seq = p_ref_seq;
    END IF;
    UPDATE ledger_heads SET size = entry.seq, last_time_us = entry.time_us WHERE ledger_id = p_lid;
    RETURN NEXT entry;
END
$$;
