"""Operations: health, and the public keys anyone may use to verify tokens and tree heads."""

import asyncio
from typing import Any

from litestar import Controller, Request, Response, get
from litestar.openapi import ResponseSpec
from sqlalchemy import text

from api.problems import is_connection_failure

HEALTH_TIMEOUT_SECONDS = 3.0


class OpsController(Controller):
    tags = ["Operations"]

    @get(
        "/health",
        summary="Liveness and database reachability",
        responses={
            503: ResponseSpec(
                data_container=dict[str, str],
                description="The database cannot be reached: `status` is `unavailable`",
            )
        },
    )
    async def health(self, request: Request[Any, Any, Any]) -> Response[dict[str, str]]:
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT_SECONDS):
                async with request.app.state.engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
        except Exception as error:
            if not is_connection_failure(error):
                raise
            return Response({"status": "unavailable", "database": "unreachable"}, status_code=503)
        return Response({"status": "ok", "database": "ok"})

    @get("/api/keys", summary="JWKS: Ed25519 public keys of pickup tokens and tree heads")
    async def keys(self, request: Request[Any, Any, Any]) -> dict[str, Any]:
        return request.app.state.settings.keyring.jwks()
