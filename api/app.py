"""The Litestar application factory: composes settings, database, auth, logging and controllers."""

import asyncio
import contextlib
import hashlib
import hmac
from collections.abc import AsyncIterator
from pathlib import Path

import structlog
from litestar import Litestar
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import NotFoundException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.prometheus import PrometheusConfig
from litestar.static_files import create_static_files_router
from sqlmodel.ext.asyncio.session import AsyncSession

from api import db
from api.auth import IdentityCache, create_auth
from api.boundary import check_input
from api.controllers.auth import AuthController
from api.controllers.campaigns import CampaignController
from api.controllers.departments import DepartmentController
from api.controllers.dropoffs import DropoffController
from api.controllers.ledger import LedgerController
from api.controllers.notifications import NotificationController
from api.controllers.ops import OpsController
from api.controllers.orders import OrderController
from api.controllers.products import ProductController
from api.controllers.refusals import document_refusals
from api.controllers.reports import ReportController
from api.controllers.stations import StationController
from api.controllers.summaries import SummaryController
from api.logging import RequestIdMiddleware, structlog_plugin
from api.metrics import MetricsController
from api.pages import create_pages_router
from api.pages.errors import address_not_found
from api.pages.templating import template_config
from api.problems import problem_details_plugin, unexpected_error
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


def csrf_secret(jwt_secret: str) -> str:
    return hmac.new(jwt_secret.encode(), b"page forms csrf", hashlib.sha256).hexdigest()


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings()
    settings.ensure_data_dir()
    engine = db.create_engine(settings.database_url, settings.db_timeouts)
    identity_cache = IdentityCache(settings.identity_cache_seconds)
    identity_cache.watch(engine)
    auth = create_auth(
        settings.jwt_signing_secret, settings.access_token_minutes, settings.secure_cookies
    )
    settings.keyring  # noqa: B018  # create the signing keys before the first request needs them

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # Alembic runs its own event loop, so it gets a thread of its own.
        await asyncio.to_thread(db.upgrade, settings.database_url)
        log.info("database ready", dialect=engine.dialect.name)
        try:
            yield
        finally:
            await engine.dispose()

    prometheus = PrometheusConfig(app_name="cloud_exchange", group_path=True)

    app = Litestar(
        route_handlers=[
            AuthController,
            DepartmentController,
            OpsController,
            StationController,
            CampaignController,
            DropoffController,
            ProductController,
            OrderController,
            LedgerController,
            ReportController,
            SummaryController,
            NotificationController,
            *([MetricsController] if settings.metrics_enabled else []),
            create_static_files_router(path="/static", directories=[STATIC_DIR]),
            create_pages_router(),
        ],
        dependencies={"db": Provide(provide_db)},
        before_request=check_input,
        state=State(
            {
                "settings": settings,
                "engine": engine,
                "session_factory": db.create_session_factory(engine),
                "auth": auth,
                "identity_cache": identity_cache,
            }
        ),
        lifespan=[lifespan, periodic_sweep],
        before_send=[security_headers(settings.secure_cookies)],
        on_app_init=[auth.on_app_init],
        middleware=[
            RequestIdMiddleware(),
            prometheus.middleware,
        ],
        plugins=[
            structlog_plugin(settings.log_format, settings.log_level),
            problem_details_plugin([CatalogError, ExchangeError, LedgerError]),
        ],
        template_config=template_config(),
        # Page forms carry a CSRF token; the API is exempt because a cookie never
        # authenticates an API write (api/auth.py), so there is nothing to forge there.
        csrf_config=CSRFConfig(
            secret=csrf_secret(settings.jwt_signing_secret),
            cookie_name="exchange_csrf",
            cookie_secure=settings.secure_cookies,
            cookie_httponly=True,
            exclude=["^/api/"],
        ),
        # Unrouted addresses: a page for people, a problem document under /api (api/pages).
        exception_handlers={Exception: unexpected_error, NotFoundException: address_not_found},
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
    return app
