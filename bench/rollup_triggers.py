"""What the rollup triggers cost PostgreSQL per drop-off.

    uv run python bench/rollup_triggers.py                 # 10,000 drop-offs per variant
    EXCHANGE_BENCH_POSTGRES_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/postgres \\
        uv run python bench/rollup_triggers.py --dropoffs 10000 --rounds 3

It creates a scratch database `triggers_bench_<random>` (dropped at the end), migrates it,
adds one department with 200 employees, a collection point and a campaign, and then times on
the server (a PL/pgSQL loop, no client round trips), in alternating rounds, four variants:
no rollup triggers (`ALTER TABLE … DISABLE TRIGGER`), the triggers as they are now
(exchange/reports/rollups.py) and, for the before/after, as migrations 0009 and 0014
installed them (api/migrations/pinned/); each round installs its variant first:

- **credited at once**: each drop-off INSERTed already confirmed, in a transaction of its
  own (the write path of an auto campaign when the insert carries its final status);
- **pending, then confirmed**: each INSERTed pending and UPDATEd to confirmed in the same
  transaction (today's Python path for an auto campaign: two row events).

Each transaction is a loop iteration ending in COMMIT (PL/pgSQL procedures may commit), so
the deferred triggers run at each commit as in service; the session sets
`synchronous_commit = off`, because the WAL flush is the same either way and would drown the
difference. Each variant's figure is the backend's CPU time per drop-off (user + system,
from /proc: the server must run on this machine, else only the wall time is printed), which
a loaded machine inflates less than the wall time; the triggers' cost is a variant's less
the variant without triggers.
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
from api.migrations.pinned import statements as pinned
from bench.tables import out, table
from exchange.reports import rollups

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
TRIGGERS = ("report_rollup_dropoffs_write", "report_rollup_dropoffs_change")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
VARIANTS = {
    "none": [],
    "now": rollups.uninstall_statements("postgresql") + rollups.install_statements("postgresql"),
    "0009": rollups.uninstall_statements("postgresql")
    + pinned("0009_rollups_install", "postgresql"),
    # Before migration 0016 added the stale-month marks (a write dated before the current
    # month marks it; these drop-offs are dated today onwards, the common case).
    "0014": rollups.uninstall_statements("postgresql")
    + pinned("0014_rollups_install", "postgresql"),
}

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
    key varchar;
    written tid;
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
            key, 'h')
        RETURNING ctid INTO written;
        IF two_events THEN
            -- By the row's address: the planner, without statistics of the growing table,
            -- would otherwise scan the department's drop-offs for the key.
            UPDATE dropoffs SET status = 'confirmed', decided_at = created_at
                WHERE ctid = written;
        END IF;
        COMMIT;
    END LOOP;
END
$$;
"""


def cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


async def timed(
    conn: asyncpg.Connection, pid: int, n: int, two_events: bool, variant: str
) -> tuple[float, float | None]:
    """Wall and CPU µs per drop-off of one round with the variant's triggers."""
    for statement in VARIANTS[variant]:
        await conn.execute(statement)
    action = "DISABLE" if variant == "none" else "ENABLE"
    for name in TRIGGERS:
        await conn.execute(f"ALTER TABLE dropoffs {action} TRIGGER {name}")
    cpu, started = cpu_seconds(pid), time.perf_counter()
    await conn.execute(f"CALL bench_dropoffs({n}, {str(two_events).lower()})")
    wall, cpu_after = time.perf_counter() - started, cpu_seconds(pid)
    used = None if cpu is None or cpu_after is None else (cpu_after - cpu) / n * 1_000_000
    return wall / n * 1_000_000, used


def _µs(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


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
            pid = await conn.fetchval("SELECT pg_backend_pid()")
            rows = []
            for two_events, label in (
                (False, "credited at once"),
                (True, "pending, then confirmed"),
            ):
                wall: dict[str, list[float]] = {v: [] for v in VARIANTS}
                cpu: dict[str, list[float | None]] = {v: [] for v in VARIANTS}
                for _ in range(rounds):  # alternating, so a swing in load hits every variant
                    for variant in VARIANTS:
                        w, c = await timed(conn, pid, n, two_events, variant)
                        wall[variant].append(w)
                        cpu[variant].append(c)
                median_cpu = {
                    v: None if None in cs else statistics.median(cs)  # type: ignore[type-var]
                    for v, cs in cpu.items()
                }
                bare = median_cpu["none"]
                row = [label]
                for variant in VARIANTS:
                    mine = median_cpu[variant]
                    row += [_µs(statistics.median(wall[variant])), _µs(mine)]
                    if variant != "none":
                        row.append(_µs(None if mine is None or bare is None else mine - bare))
                rows.append(row)
                out(f"  {row}")
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
        f"Server time per drop-off, µs ({args.dropoffs:,} drop-offs, median of "
        f"{args.rounds} rounds; CPU: the backend's user + system time)",
        [
            "write", "no triggers: wall", "CPU",
            "triggers now: wall", "CPU", "their CPU cost",
            "0009's triggers: wall", "CPU", "their CPU cost",
            "0014's triggers: wall", "CPU", "their CPU cost",
        ],
        rows,
    )  # fmt: skip
    out(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
