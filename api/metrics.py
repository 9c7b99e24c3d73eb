"""/metrics (Prometheus), served only where the settings say: off by default, or to the
addresses of an allow-list (EXCHANGE_METRICS_ALLOW), or with a bearer token
(EXCHANGE_METRICS_TOKEN). Either one grants access when both are set."""

import hmac
import ipaddress
from typing import Any

from litestar import MediaType, Response, get
from litestar.connection import ASGIConnection
from litestar.exceptions import PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.plugins.prometheus import PrometheusController

from api.controllers.refusals import refusals


def networks(allow: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """'10.0.0.0/8, 127.0.0.1' as networks; a bare address is a network of one."""
    return [
        ipaddress.ip_network(item.strip(), strict=False)
        for item in allow.split(",")
        if item.strip()
    ]


async def metrics_allowed(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    settings = connection.app.state.settings
    if settings.metrics_token:
        sent = connection.headers.get("authorization", "")
        if hmac.compare_digest(sent.encode(), f"Bearer {settings.metrics_token}".encode()):
            return
    if connection.client and settings.metrics_allow:
        try:
            address = ipaddress.ip_address(connection.client.host)
        except ValueError:
            address = None
        if address is not None and any(address in net for net in networks(settings.metrics_allow)):
            return
    raise PermissionDeniedException("Metrics are served only to the configured scrapers.")


class MetricsController(PrometheusController):
    guards = [metrics_allowed]
    tags = ["Operations"]

    @get(
        media_type=MediaType.TEXT,
        summary="Prometheus metrics, in Prometheus' text exposition format (not JSON)",
        description="Only for the scrapers the settings name: a request carrying "
        "`Authorization: Bearer <EXCHANGE_METRICS_TOKEN>`, or from an address in "
        "`EXCHANGE_METRICS_ALLOW`. With neither setting the route does not exist (404).",
        responses=refusals(_403="Not a configured scraper"),
    )
    async def get(self) -> Response[str]:
        return await PrometheusController.get.fn(self)  # type: ignore[no-any-return]
