"""Security headers on every HTML answer, /metrics only where configured, and forwarded
headers believed only from configured proxies."""

import asyncio
import shutil
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
import uvicorn
from litestar import Litestar
from litestar.testing import AsyncTestClient
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from api.app import create_app
from api.cli import uvicorn_options
from api.settings import Settings
from tests.conftest import PASSWORD, World


def sqlite_settings(tmp_path: Path, template: Path, **overrides: object) -> Settings:
    shutil.copy(template, tmp_path / "exchange.db")
    return Settings(data_dir=tmp_path, log_format="json", **overrides)  # type: ignore[arg-type]


# --- Security headers ------------------------------------------------------------------------


async def test_every_html_answer_carries_the_security_headers(
    client: AsyncTestClient[Litestar], world: World
) -> None:
    coordinator = world.headers["coord-a"]
    answers = {
        "sign-in page": await client.get("/login"),
        "page": await client.get("/coord/members", headers=coordinator),
        "posters": await client.get(
            f"/api/departments/{world.dept_a}/stations/posters", headers=coordinator
        ),
        "not found page": await client.get("/no-such-page"),
        "refused page": await client.get("/admin/departments", headers=coordinator),
        "API docs": await client.get("/schema"),
        "problem": await client.get("/api/me"),
    }
    for name, response in answers.items():
        policy = response.headers.get("content-security-policy", "")
        assert "default-src 'self'" in policy, name
        assert "script-src 'self';" in policy and "unsafe-inline" not in policy.split("style")[0]
        assert "frame-ancestors 'none'" in policy and "base-uri 'none'" in policy, name
        assert response.headers["x-content-type-options"] == "nosniff", name
        assert response.headers["referrer-policy"] == "same-origin", name
        assert response.headers["x-frame-options"] == "DENY", name
        assert "strict-transport-security" not in response.headers, name  # plain HTTP
    assert answers["page"].headers["content-type"].startswith("text/html")
    assert "style-src 'self';" in answers["page"].headers["content-security-policy"]


async def test_hsts_is_sent_when_the_service_runs_behind_https(
    tmp_path: Path, sqlite_template: Path
) -> None:
    settings = sqlite_settings(tmp_path, sqlite_template, secure_cookies=True)
    async with AsyncTestClient(app=create_app(settings)) as client:
        response = await client.get("/login")
    assert response.headers["strict-transport-security"].startswith("max-age=31536000")


def test_no_template_has_inline_script_or_style() -> None:
    templates = Path(__file__).parents[2] / "api" / "templates"
    for template in templates.rglob("*.html"):
        html = template.read_text()
        assert " style=" not in html and "<style" not in html, template
        assert " on" not in html.replace(" only", "") or "onclick" not in html, template
        for tag in html.split("<script")[1:]:
            assert 'src="/static/' in tag.split(">")[0] or "application/json" in tag, template


# --- /metrics ----------------------------------------------------------------------------


async def test_metrics_are_off_unless_configured(tmp_path: Path, sqlite_template: Path) -> None:
    async with AsyncTestClient(app=create_app(sqlite_settings(tmp_path, sqlite_template))) as c:
        assert (await c.get("/metrics")).status_code == 404


async def test_metrics_with_a_bearer_token(tmp_path: Path, sqlite_template: Path) -> None:
    settings = sqlite_settings(tmp_path, sqlite_template, metrics_token="scrape-secret-1")
    async with AsyncTestClient(app=create_app(settings)) as client:
        await client.get("/health")
        assert (await client.get("/metrics")).status_code == 403
        wrong = {"Authorization": "Bearer guess"}
        assert (await client.get("/metrics", headers=wrong)).status_code == 403
        right = {"Authorization": "Bearer scrape-secret-1"}
        response = await client.get("/metrics", headers=right)
    assert response.status_code == 200
    assert 'litestar_requests_total{app_name="cloud_exchange"' in response.text


async def test_metrics_for_an_address_allow_list(tmp_path: Path, sqlite_template: Path) -> None:
    settings = sqlite_settings(tmp_path, sqlite_template, metrics_allow="10.0.0.0/8, 192.0.2.7")
    app = ProxyHeadersMiddleware(create_app(settings), trusted_hosts="*")
    async with AsyncTestClient(app=app) as client:  # type: ignore[arg-type]

        async def scrape(address: str) -> int:
            response = await client.get("/metrics", headers={"X-Forwarded-For": address})
            return response.status_code

        assert [await scrape(a) for a in ("10.2.3.4", "192.0.2.7", "192.0.2.8", "::1")] == [
            200,
            200,
            403,
            403,
        ]


def test_a_bad_metrics_allow_list_stops_the_service_from_starting() -> None:
    with pytest.raises(ValueError, match="nonsense"):
        Settings(metrics_allow="10.0.0.0/8, nonsense")


# --- Forwarded headers: a real uvicorn, configured the way `exchange serve` configures it ---


@pytest.fixture
def serve(database_url: str, tmp_path: Path) -> Callable[..., AsyncIterator[httpx.AsyncClient]]:
    async def run(**overrides: object) -> AsyncIterator[httpx.AsyncClient]:
        settings = Settings(
            data_dir=tmp_path / "served",
            database_url=database_url,
            log_format="json",
            login_attempts_per_minute=2,
            **overrides,  # type: ignore[arg-type]
        )
        # The socket listens before the server starts: requests wait in its backlog.
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        config = uvicorn.Config(create_app(settings), **uvicorn_options(settings))
        server = uvicorn.Server(config)
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        task = asyncio.ensure_future(server.serve(sockets=[sock]))
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                yield client
        finally:
            server.should_exit = True
            await task
            sock.close()

    return run


async def sign_in_statuses(client: httpx.AsyncClient) -> list[int]:
    """Three wrong passwords, each claiming to come from another address."""
    statuses = []
    for n in range(3):
        response = await client.post(
            "/api/auth/token",
            json={"username": "nobody", "password": PASSWORD},
            headers={"X-Forwarded-For": f"198.51.100.{n}"},
        )
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert 1 <= int(response.headers["retry-after"]) <= 60
            assert response.json()["status"] == 429
    return statuses


async def test_x_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(
    serve: Callable[..., AsyncIterator[httpx.AsyncClient]], world: World
) -> None:
    async for client in serve():  # the default: no proxy is trusted, not even 127.0.0.1
        assert await sign_in_statuses(client) == [401, 401, 429]
    async for client in serve(trusted_proxies="127.0.0.1"):
        assert await sign_in_statuses(client) == [401, 401, 401]  # three addresses now
        signed_in = await client.post(
            "/api/auth/token",
            json={"username": "emp-a", "password": PASSWORD},
            headers={"X-Forwarded-For": "203.0.113.9"},
        )
        assert signed_in.status_code == 200
