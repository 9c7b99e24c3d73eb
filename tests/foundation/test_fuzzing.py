"""Schemathesis fuzzes every operation of the OpenAPI document against a real server, as each
role: no answer is a server error, and every answer is one the document describes (status
code, content type, body, headers). Bodies that break the schema must be refused.

Bounded: a few examples per operation, role and mode (valid and schema-breaking data), no
shrinking; a failure prints the curl command that reproduces it. The demo data set gives the
fuzzer real departments, stations, products and a campaign to reach past the lookups.
"""

import asyncio
import os
import socket
import threading
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import FailureGroup

from api import db
from api.app import create_app
from api.demo import DEMO_PASSWORD, seed_demo
from api.settings import Settings
from tests.conftest import POSTGRES_URL, RUN_PREFIX, _admin, _with_database

EXAMPLES = int(os.environ.get("EXCHANGE_FUZZ_EXAMPLES", "4"))
# SQLite in every run; PostgreSQL doubles the time, so it is asked for with
# EXCHANGE_FUZZ_POSTGRES=1 (test_hostile_input.py covers PostgreSQL's own refusals, NUL above all).
FUZZ_BACKENDS = ["sqlite"] + (
    ["postgres"] if POSTGRES_URL and os.environ.get("EXCHANGE_FUZZ_POSTGRES") == "1" else []
)
ROLES = {"admin": "admin", "auditor": "auditor", "coordinator": "coord-a", "employee": "emp-a1"}


@pytest.fixture(scope="module", params=FUZZ_BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The app under uvicorn on a socket bound before it starts, so requests simply queue
    until it serves; the demo data set loaded."""
    data = tmp_path_factory.mktemp("fuzz")
    url = ""
    if request.param == "postgres":
        name = f"{RUN_PREFIX}_fuzz_{os.getpid()}"
        _admin(f"CREATE DATABASE {name}")
        url = _with_database(POSTGRES_URL, name)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app_settings = Settings(
        data_dir=data,
        database_url=url,
        public_base_url=base_url,
        login_attempts_per_minute=100_000,
        log_format="json",
        log_level="CRITICAL",
    )
    app_settings.ensure_data_dir()

    async def seed() -> None:
        engine = db.create_engine(app_settings.database_url)
        try:
            await seed_demo(db.create_session_factory(engine))
        finally:
            await engine.dispose()

    db.upgrade(app_settings.database_url)
    asyncio.run(seed())
    server = uvicorn.Server(
        uvicorn.Config(create_app(app_settings), log_config=None, access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    yield base_url
    server.should_exit = True
    thread.join(timeout=30)
    sock.close()
    if request.param == "postgres":
        _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def bearer_tokens(base_url: str) -> dict[str, str]:
    tokens = {}
    for role, username in ROLES.items():
        answer = httpx.post(
            f"{base_url}/api/auth/token",
            json={"username": username, "password": DEMO_PASSWORD},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        tokens[role] = answer.json()["access_token"]
    return tokens


def fuzz(operation: schemathesis.APIOperation, mode: GenerationMode, base_url: str) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def answer_as_documented(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=base_url, timeout=60)

    try:
        answer_as_documented()
    except Unsatisfiable:
        assert mode == GenerationMode.NEGATIVE  # an operation without parameters: nothing to break


# Signing out revokes the token the other operations use, and suspending the department
# turns every later request of its members into a refusal: both have tests of their own.
# /metrics is Prometheus' text format, outside the API.
SPARED = {
    "POST /api/auth/logout",
    "POST /api/departments/{department_id}/suspend",
    "GET /metrics",
}


def test_every_operation_answers_as_documented_for_every_role(server: str) -> None:
    failures: list[str] = []
    for role, token in bearer_tokens(server).items():
        config = SchemathesisConfig.from_dict(
            {
                "auth": {"openapi": {"BearerToken": {"bearer": token}}},
                # Business rules refuse many well-formed requests (unknown ids, a wrong
                # password, a missing Idempotency-Key); each refusal is documented instead.
                "checks": {"positive_data_acceptance": {"enabled": False}},
            }
        )
        schema = schemathesis.openapi.from_url(
            f"{server}/schema/openapi.json", config=config, timeout=60
        )
        for result in schema.get_all_operations():
            operation = result.ok()
            if operation.label in SPARED:
                continue
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                try:
                    fuzz(operation, mode, server)
                except (Exception, FailureGroup) as error:  # report every operation at once
                    failures.append(f"{operation.label} as {role} ({mode.value}): {error}")
    assert not failures, "\n\n".join(failures)
