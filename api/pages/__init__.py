"""The server-rendered web pages: one Router mounted at /, beside the JSON API under /api.

Pages call the same domain functions as the API and never repeat a rule; they differ only in
how they answer: HTML in the user's language, redirects to sign in, errors next to fields.
"""

from litestar import Router
from litestar.config.csrf import CSRFConfig
from litestar.middleware import DefineMiddleware
from litestar.middleware.csrf import CSRFMiddleware

from api.pages.account import AccountPages
from api.pages.admin import AdminPages
from api.pages.audit import AuditPages
from api.pages.campaigns import CampaignPages
from api.pages.dashboard import DashboardPage
from api.pages.desk import DeskFiles, PickupDesk, PickupLink
from api.pages.dropoff_review import DropoffReview
from api.pages.employee import EmployeePages
from api.pages.errors import exception_handlers
from api.pages.incidents import IncidentPages
from api.pages.members import MemberPages
from api.pages.notifications import AdminMessagePages, ChannelPages, ContactPage, MessagePages
from api.pages.products import ProductPages
from api.pages.receipts import ReceiptPages
from api.pages.reports import Co2eFactorPages, ReportPages
from api.pages.shopping import ShoppingPages
from api.pages.stations import StationPages
from api.pages.summary import PlatformSummaryPages, SummaryPages
from catalog.errors import CatalogError
from exchange.errors import ExchangeError
from ledger.errors import LedgerError

DOMAIN_ERRORS: list[type[Exception]] = [CatalogError, ExchangeError, LedgerError]


def create_pages_router(csrf: CSRFConfig) -> Router:
    """The pages, each form post checked against the CSRF cookie (`csrf`)."""
    return Router(
        path="/",
        route_handlers=[
            AccountPages,
            AdminPages,
            CampaignPages,
            EmployeePages,
            ShoppingPages,
            ReceiptPages,
            MemberPages,
            StationPages,
            ProductPages,
            PickupDesk,
            PickupLink,
            DeskFiles,
            IncidentPages,
            DropoffReview,
            AuditPages,
            DashboardPage,
            ReportPages,
            Co2eFactorPages,
            SummaryPages,
            PlatformSummaryPages,
            ChannelPages,
            MessagePages,
            AdminMessagePages,
            ContactPage,
        ],
        exception_handlers=exception_handlers(DOMAIN_ERRORS),
        middleware=[DefineMiddleware(CSRFMiddleware, config=csrf)],
        include_in_schema=False,
    )
