"""The raw baseline of bench/http.py: a Litestar route over asyncpg doing a drop-off's durable
work and nothing else — parse the JSON body, INSERT the drop-off, UPDATE the employee's
balance, in one transaction. No auth, no idempotency, no ledger, no Merkle log: the floor
the service is measured against.

    EXCHANGE_BENCH_RAW_DSN=postgresql://... python -m bench.raw_dropoffs --port 8001

It is served by the same code and server software as `exchange serve` (api/cli.py
run_server), so that the ratio between the two measures the service, not the server.
"""

import argparse
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import msgspec
from litestar import Litestar, Request, post

SCHEMA = """
CREATE TABLE IF NOT EXISTS raw_dropoffs (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    station_code TEXT NOT NULL,
    category TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    idempotency_key TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS raw_balances (user_id TEXT PRIMARY KEY, points BIGINT NOT NULL);
"""


class DropoffIn(msgspec.Struct):
    station_code: str
    category: str
    quantity: int
    user_id: str


class DropoffOut(msgspec.Struct):
    id: str
    points: int


def create_app() -> Litestar:
    dsn = os.environ["EXCHANGE_BENCH_RAW_DSN"]

    @asynccontextmanager
    async def pool(app: Litestar) -> AsyncIterator[None]:
        app.state.pool = await asyncpg.create_pool(dsn, min_size=4, max_size=20)
        try:
            yield
        finally:
            await app.state.pool.close()

    @post("/dropoffs", status_code=201)
    async def dropoff(request: Request, data: DropoffIn) -> DropoffOut:
        key = request.headers.get("idempotency-key", "")
        dropoff_id = secrets.token_hex(11)
        points = data.quantity * 20
        async with request.app.state.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO raw_dropoffs (id, user_id, station_code, category, quantity,"
                " idempotency_key) VALUES ($1, $2, $3, $4, $5, $6)",
                dropoff_id,
                data.user_id,
                data.station_code,
                data.category,
                data.quantity,
                key,
            )
            await conn.execute(
                "UPDATE raw_balances SET points = points + $1 WHERE user_id = $2",
                points,
                data.user_id,
            )
        return DropoffOut(dropoff_id, points)

    return Litestar([dropoff], lifespan=[pool])


if __name__ == "__main__":
    from api.cli import SERVERS, run_server
    from api.settings import Settings

    parser = argparse.ArgumentParser(description="Serve the raw baseline route.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--server", choices=SERVERS, default="uvicorn")
    args = parser.parse_args()
    run_server(
        "bench.raw_dropoffs:create_app",
        Settings(),
        args.host,
        args.port,
        args.workers,
        args.server,
    )
