"""What the rollup triggers cost PostgreSQL per drop-off.

    uv run python bench/rollup_triggers.py                 # 10,000 drop-offs per variant
    EXCHANGE_BENCH_POSTGRES_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/postgres \\
        uv run python bench/rollup_triggers.py --dropoffs 10000 --rounds 3

It creates a scratch database `triggers_bench_<random>` (dropped at the end), migrates it,
adds one department with 200 employees, a collection point and a campaign, and then, with
the rollup triggers enabled and disabled (`ALTER TABLE … DISABLE TRIGGER`), in alternating
rounds, times on the server (a PL/pgSQL loop, no client round trips):

- **credited at once**: each drop-off INSERTed already confirmed, in a transaction of its
  own (the write path of an auto campaign when the insert carries its final status);
- **pending, then confirmed**: each INSERTed pending and UPDATEd to confirmed in the same
  transaction (today's Python path for an auto campaign: two row events).

Each transaction is a loop iteration ending in COMMIT (PL/pgSQL procedures may commit), so
the deferred triggers run at each commit as in service; the session sets
`synchronous_commit = off`, because the WAL flush is the same either way and would drown the
difference. The figure is the server's time per drop-off with the triggers less without;
the write's own cost is beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import time
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api import db
from bench.tables import out, table

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
TRIGGERS = ("report_rollup_dropoffs_write", "report_rollup_dropoffs_change")

SETUP = """
INSERT INTO departments (id, name, status, village_name, village_county, village_province,
    contact_name, contact_phone, pickup_location, created_at, status_changed_at)
    VALUES ('dept', '部门', 'approved', '村', '县', '省', '人', '0', '厅', now(), now());
INSERT INTO users (id, username, display_name, password_hash, department_id, is_active, created_at)
    SELECT 'u' || n, 'u' || n, '员工', '-', 'dept', true, now() FROM generate_series(1, 200) n;
INSERT INTO campaigns (id, department_id, name, starts_at, ends_at, policy, daily_cap_points,
    cartridges_remanufactured, created_at, created_by)
    VALUES ('camp', 'dept', '周', now() - interval '1 day', now() + interval '300 days',
            'auto', 100000, false, now(), 'bench');
INSERT INTO stations (department_id, id, code, name, location, active, created_at, created_by,
    updated_at, updated_by) VALUES ('dept', 'st', 'st', '厅', '', true, now(), 'b', now(), 'b');
CREATE PROCEDURE bench_dropoffs(n int, two_events boolean) LANGUAGE plpgsql AS $$
DECLARE
    i int;
    key text;
BEGIN
    FOR i IN 1..n LOOP
        key := md5(random()::text);
        INSERT INTO dropoffs (department_id, id, user_id, station_id, campaign_id, category, unit,
            quantity, rate_points, points, status, local_day, ledger_seq, created_at, decided_at,
            idempotency_key, request_hash)
        VALUES ('dept', key, 'u' || (1 + i % 200), 'st', 'camp',
            (ARRAY['paper', 'ink_cartridge', 'phone'])[1 + i % 3],
            CASE WHEN i % 3 = 0 THEN 'item' ELSE 'g' END, 1000, 40, 40,
            CASE WHEN two_events THEN 'pending' ELSE 'confirmed' END,
            to_char(now() + (i % 300) * interval '1 day', 'YYYY-MM-DD'), i,
            now() + (i % 300) * interval '1 day',
            CASE WHEN two_events THEN NULL ELSE now() + (i % 300) * interval '1 day' END,
            key, 'h');
        IF two_events THEN
            UPDATE dropoffs SET status = 'confirmed', decided_at = created_at
                WHERE department_id = 'dept' AND dropoffs.id = key;
        END IF;
        COMMIT;
    END LOOP;
END
$$;
"""


async def timed(conn: asyncpg.Connection, n: int, two_events: bool, triggers: bool) -> float:
    action = "ENABLE" if triggers else "DISABLE"
    for name in TRIGGERS:
        await conn.execute(f"ALTER TABLE dropoffs {action} TRIGGER {name}")
    started = time.perf_counter()
    await conn.execute(f"CALL bench_dropoffs({n}, {str(two_events).lower()})")
    return (time.perf_counter() - started) / n * 1_000_000  # µs per drop-off


async def run(base: str, n: int, rounds: int) -> list[list[str]]:
    admin_dsn = base.replace("+asyncpg", "")
    name = f"triggers_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f"CREATE DATABASE {name}")
    await admin.close()
    url = f"{base.rsplit('/', 1)[0]}/{name}"
    try:
        await asyncio.to_thread(db.upgrade, url)
        conn = await asyncpg.connect(url.replace("+asyncpg", ""))
        try:
            await conn.execute(SETUP)
            # The commit's WAL flush is the same with and without the triggers and, on a
            # shared disk, far larger and noisier than them: leave it out of the figure.
            await conn.execute("SET synchronous_commit = off")
            rows = []
            for two_events, label in (
                (False, "credited at once"),
                (True, "pending, then confirmed"),
            ):
                with_t, without_t = [], []
                for _ in range(rounds):  # alternating, so a swing in load hits both
                    without_t.append(await timed(conn, n, two_events, triggers=False))
                    with_t.append(await timed(conn, n, two_events, triggers=True))
                a, b = statistics.median(without_t), statistics.median(with_t)
                rows.append([label, f"{a:,.0f}", f"{b:,.0f}", f"{b - a:,.0f}"])
                out(f"  {rows[-1]}")
            return rows
        finally:
            await conn.close()
    finally:
        admin = await asyncpg.connect(admin_dsn)
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--postgres", default=os.environ.get("EXCHANGE_BENCH_POSTGRES_URL", DEFAULT_PG)
    )
    parser.add_argument("--dropoffs", type=int, default=10_000, help="per round and variant")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    out(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    rows = asyncio.run(run(args.postgres, args.dropoffs, args.rounds))
    table(
        f"Server time per drop-off, µs ({args.dropoffs:,} drop-offs, "
        f"median of {args.rounds} rounds)",
        ["write", "without triggers", "with triggers", "the triggers' cost"],
        rows,
    )
    out(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
