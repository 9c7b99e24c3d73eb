"""The Litestar application factory: composes settings, database, auth, logging and controllers."""

import asyncio
import contextlib
import hashlib
import hmac
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import structlog
from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import NotFoundException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.prometheus import PrometheusConfig
from litestar.static_files import create_static_files_router
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.ext.asyncio.session import AsyncSession

from api import db
from api.auth import IdentityCache, TokenVerifier, create_auth
from api.boundary import check_input
from api.controllers.auth import AuthController
from api.controllers.campaigns import CampaignController
from api.controllers.departments import DepartmentController
from api.controllers.desk import DeskController
from api.controllers.dropoffs import DropoffController
from api.controllers.jobs import JobController
from api.controllers.ledger import LedgerController
from api.controllers.notifications import NotificationController
from api.controllers.ops import OpsController
from api.controllers.orders import OrderController
from api.controllers.products import ProductController
from api.controllers.receipts import ReceiptController
from api.controllers.refusals import document_refusals
from api.controllers.reports import ReportController
from api.controllers.stations import StationController
from api.controllers.summaries import SummaryController
from api.controllers.witness import WitnessController
from api.deadlines import DeadlinePassed, RequestDeadline, clean_ups_finished
from api.jobs import job_runners
from api.logging import RequestLog, structlog_plugin
from api.metrics import MetricsController
from api.pages import create_pages_router
from api.pages.errors import address_not_found
from api.pages.templating import template_config
from api.problems import deadline_passed, problem_details_plugin, unexpected_error
from api.redoc import SelfHostedRedoc
from api.security_headers import security_headers
from api.settings import Settings
from api.sweep import periodic_sweep
from catalog.errors import CatalogError
from exchange.errors import ExchangeError
from ledger.errors import LedgerError

log = structlog.get_logger()
STATIC_DIR = Path(__file__).parent / "static"


async def provide_db(state: State) -> AsyncIterator[AsyncSession]:
    """One transaction per request: committed when the handler returns, rolled back on error."""
    async with db.transaction(state.session_factory) as session:
        yield session


async def provide_connection(state: State) -> AsyncIterator[AsyncConnection]:
    """A pooled connection outside any transaction, for the hot writes (api.params.Conn)."""
    async with db.connection(state.engine) as conn:
        yield conn


def outermost(*middleware: Any) -> Callable[[AppConfig], AppConfig]:
    """Puts `middleware` outside every other, the authentication that loads the caller from
    the database included: the metrics count every answer, and the request deadline
    (api/deadlines.py) covers all the request's waits."""

    def on_app_init(config: AppConfig) -> AppConfig:
        config.middleware[:0] = middleware
        return config

    return on_app_init


def csrf_secret(jwt_secret: str) -> str:
    return hmac.new(jwt_secret.encode(), b"page forms csrf", hashlib.sha256).hexdigest()


def bind(state: State, settings: Settings) -> None:
    """Points an app's state at the database and data directory of `settings`: the engine, its
    sessions, and the identity cache that watches its writes. Everything reads them from the
    state, so the test suite binds one app to each test's own database instead of building an
    app per test (a third of a second of CPU each)."""
    settings.ensure_data_dir()
    settings.keyring  # noqa: B018  # create the signing keys before the first request needs them
    engine = db.create_engine(settings.database_url, settings.db_timeouts)
    identity_cache = IdentityCache(settings.identity_cache_seconds)
    identity_cache.watch(engine)
    state["settings"] = settings
    state["engine"] = engine
    state["session_factory"] = db.create_session_factory(engine)
    state["identity_cache"] = identity_cache


@contextlib.asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    if not await db.at_head(app.state.engine):
        # Alembic runs its own event loop, so it gets a thread of its own.
        await asyncio.to_thread(db.upgrade, app.state.settings.database_url)
    log.info("database ready", dialect=app.state.engine.dialect.name)
    try:
        yield
    finally:
        await clean_ups_finished(app.state.settings.shutdown_timeout_seconds)
        await app.state.engine.dispose()


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings()
    state = State()
    bind(state, settings)
    auth = create_auth(
        settings.jwt_signing_secret, settings.access_token_minutes, settings.secure_cookies
    )
    state["auth"] = auth
    state["token_verifier"] = TokenVerifier(settings.jwt_signing_secret, auth.algorithm)

    prometheus = PrometheusConfig(app_name="cloud_exchange", group_path=True)

    app = Litestar(
        route_handlers=[
            AuthController,
            DepartmentController,
            JobController,
            OpsController,
            StationController,
            CampaignController,
            DropoffController,
            ProductController,
            OrderController,
            DeskController,
            LedgerController,
            ReceiptController,
            WitnessController,
            ReportController,
            SummaryController,
            NotificationController,
            *([MetricsController] if settings.metrics_enabled else []),
            create_static_files_router(path="/static", directories=[STATIC_DIR]),
            # Page forms carry a CSRF token; the middleware runs for the pages alone. The API
            # needs none because a cookie never authenticates an API write (api/auth.py), and
            # an app-wide CSRF config would wrap every API route in it too.
            create_pages_router(
                CSRFConfig(
                    secret=csrf_secret(settings.jwt_signing_secret),
                    cookie_name="exchange_csrf",
                    cookie_secure=settings.secure_cookies,
                    cookie_httponly=True,
                )
            ),
        ],
        dependencies={"db": Provide(provide_db), "conn": Provide(provide_connection)},
        before_request=check_input,
        state=state,
        lifespan=[lifespan, periodic_sweep, job_runners],
        before_send=[security_headers(settings.secure_cookies)],
        on_app_init=[
            auth.on_app_init,
            outermost(
                prometheus.middleware,
                RequestDeadline(
                    settings.request_deadline_seconds, settings.report_deadline_seconds
                ),
            ),
        ],
        plugins=[
            structlog_plugin(settings.log_format, settings.log_level),
            problem_details_plugin([CatalogError, ExchangeError, LedgerError]),
        ],
        template_config=template_config(),
        # Unrouted addresses: a page for people, a problem document under /api (api/pages).
        exception_handlers={
            Exception: unexpected_error,
            NotFoundException: address_not_found,
            DeadlinePassed: deadline_passed,
        },
        openapi_config=OpenAPIConfig(
            title="Cloud Exchange API",
            version="1.0.0",
            path="/schema",
            render_plugins=[
                SelfHostedRedoc(js_url="/static/vendor/redoc.standalone.js", google_fonts=False)
            ],
            components=Components(
                security_schemes={
                    "BearerToken": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")
                }
            ),
        ),
        debug=False,
    )
    document_refusals(app)
    app.asgi_handler = RequestLog(app.asgi_handler)
    return app
