"""Schemathesis fuzzes every operation of the OpenAPI document against a real server, on SQLite
and on PostgreSQL, as each role: no answer is a server error, and every answer is one the
document describes (status code, content type, body, headers). Bodies that break the schema
must be refused.

Bounded: a few examples per operation, role and mode (valid and schema-breaking data), no
shrinking; a failure prints the curl command that reproduces it. The demo data set gives the
fuzzer real departments, stations, products and a campaign to reach past the lookups.
"""

import io
import os
import shutil
import socket
import threading
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from PIL import Image
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import FailureGroup
from schemathesis.schemas import BaseSchema

from api.app import create_app
from api.demo import DEMO_PASSWORD, seed_demo
from api.settings import Settings
from tests.conftest import (
    BACKENDS,
    POSTGRES_URL,
    RUN_PREFIX,
    _admin,
    _with_database,
    seed_database,
)

EXAMPLES = int(os.environ.get("EXCHANGE_FUZZ_EXAMPLES", "4"))
# Admin last: suspending a department turns its members' later requests into refusals.
ROLES = {"employee": "emp-a1", "coordinator": "coord-a", "auditor": "auditor", "admin": "admin"}
# The last operations, in this order: signing out revokes the token each role uses.
LAST = ["POST /api/departments/{department_id}/suspend", "POST /api/auth/logout"]


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The app under uvicorn on a socket bound before it starts, so requests simply queue
    until it serves; the demo data set loaded."""
    data = tmp_path_factory.mktemp("fuzz")
    url = ""  # SQLite: the default database's place in the data directory
    if request.param == "postgres":
        name = f"{RUN_PREFIX}_fuzz_{os.getpid()}"
        _admin(f"CREATE DATABASE {name} TEMPLATE {request.getfixturevalue('postgres_template')}")
        url = _with_database(POSTGRES_URL, name)
        seed_database(url, seed_demo)
    else:
        shutil.copy(request.getfixturevalue("sqlite_demo_template"), data / "exchange.db")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app_settings = Settings(
        data_dir=data,
        database_url=url,
        public_base_url=base_url,
        login_attempts_per_minute=100_000,
        metrics_allow="127.0.0.1",  # /metrics is fuzzed too
        log_format="json",
        log_level="CRITICAL",
    )
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


def fuzz(
    operation: schemathesis.APIOperation,
    mode: GenerationMode,
    base_url: str,
    tokens: dict[str, str],
) -> None:
    """Each case drawn is sent as every role in turn: drawing a case costs more than sending
    it, and each role still gets EXAMPLES cases of each operation and mode."""

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def answer_as_documented(case: schemathesis.Case) -> None:
        for role, token in tokens.items():
            try:
                case.call_and_validate(
                    base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60
                )
            except (Exception, FailureGroup) as error:
                error.add_note(f"as {role}")
                raise

    try:
        answer_as_documented()
    except Unsatisfiable:
        assert mode == GenerationMode.NEGATIVE  # an operation without parameters: nothing to break


def api_schema(server: str) -> BaseSchema:
    """The served OpenAPI document; each call of a case names the caller's bearer token."""
    config = SchemathesisConfig.from_dict(
        {
            # Business rules refuse many well-formed requests (unknown ids, a wrong
            # password, a missing Idempotency-Key); each refusal is documented instead.
            "checks": {"positive_data_acceptance": {"enabled": False}},
        }
    )
    return schemathesis.openapi.from_url(f"{server}/schema/openapi.json", config=config, timeout=60)


def test_answers_the_fuzzer_rarely_reaches_are_as_documented(server: str) -> None:
    """Photos that exist (served as PNG or JPEG), and a campaign for a department that does
    not exist (404, though the route has no path parameter)."""
    tokens = bearer_tokens(server)
    schema = api_schema(server)
    coordinator = {"Authorization": f"Bearer {tokens['coordinator']}"}
    me = httpx.get(f"{server}/api/me", headers=coordinator).json()
    department = me["department"]["id"]
    products = httpx.get(f"{server}/api/departments/{department}/products", headers=coordinator)
    product = products.json()["items"][0]["id"]
    upload = httpx.post(
        f"{server}/api/products/{product}/photo",
        files={"file": ("rice.png", png(), "image/png")},
        headers=coordinator,
        timeout=60,
    )
    assert upload.status_code == 200, upload.text
    period = {"from": "2026-06-01", "to": "2026-06-07"}
    photo = httpx.post(
        f"{server}/api/departments/{department}/summary/photos",
        params=period,
        files={"file": ("activity.jpg", jpeg(), "image/jpeg")},
        headers=coordinator,
        timeout=60,
    )
    assert photo.status_code == 201, photo.text
    cases = [
        (
            schema["/api/products/{product_id}/photo"]["GET"],
            {"path_parameters": {"product_id": product}},
            "image/png",
        ),
        (
            schema["/api/departments/{department_id}/summary/photos/{photo_id}"]["GET"],
            {"path_parameters": {"department_id": department, "photo_id": photo.json()["id"]}},
            "image/jpeg",
        ),
    ]
    for operation, parts, media_type in cases:
        case = operation.Case(headers=coordinator, **parts)
        answer = case.call_and_validate(base_url=server, timeout=60)
        assert answer.status_code == 200 and answer.headers["content-type"] == [media_type]

    admin = schema["/api/campaigns"]["POST"]
    body = {
        "name": "x",
        "starts_at": "2030-01-01T00:00:00+08:00",
        "ends_at": "2030-01-02T00:00:00+08:00",
        "policy": "auto",
        "daily_cap_points": 10,
        "department_id": "no-such-department",
    }
    case = admin.Case(
        body=body,
        media_type="application/json",
        headers={"Authorization": f"Bearer {tokens['admin']}"},
    )
    answer = case.call_and_validate(base_url=server, timeout=60)
    assert answer.status_code == 404


def test_every_operation_answers_as_documented_for_every_role(server: str) -> None:
    tokens = bearer_tokens(server)
    failures: list[str] = []
    operations = [result.ok() for result in api_schema(server).get_all_operations()]
    operations.sort(key=lambda op: LAST.index(op.label) if op.label in LAST else -1)
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                fuzz(operation, mode, server, tokens)
            except (Exception, FailureGroup) as error:  # report every operation at once
                notes = " ".join(getattr(error, "__notes__", []))
                failures.append(f"{operation.label} {notes} ({mode.value}): {error}")
    assert not failures, "\n\n".join(failures)


def png() -> bytes:
    return image("PNG")


def jpeg() -> bytes:
    return image("JPEG")


def image(kind: str) -> bytes:
    picture = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 40, 40)).save(picture, kind)
    return picture.getvalue()
