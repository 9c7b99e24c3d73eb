"""Errors the exchange raises; api/problems.py maps each class to one problem response.

Every error has a stable, short `title` (what a client or a scanner shows in large type)
and a `detail` saying exactly what was wrong. Fields a problem document should carry
besides are named in `problem_fields`.
"""

from datetime import datetime


class ExchangeError(Exception):
    title = "Exchange error"
    problem_fields: tuple[str, ...] = ()

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(ExchangeError):
    title = "Not found"


class NotAMember(ExchangeError):
    """Platform staff (no department) asking for what exists only inside a department."""

    title = "Only members of a department"


class InvalidInput(ExchangeError):
    """A value breaks a rule; `field` and `rule` name which."""

    title = "Invalid field"

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


# --- idempotency ---------------------------------------------------------------------------


class IdempotencyKeyMissing(ExchangeError):
    title = "Idempotency-Key header required"


class IdempotencyKeyReused(ExchangeError):
    title = "Idempotency key reused with a different request"
    problem_fields = ("idempotency_key",)

    def __init__(self, key: str) -> None:
        super().__init__(
            f"The Idempotency-Key {key!r} was already used for a different request; "
            "use a new key for a new request."
        )
        self.idempotency_key = key


# --- stations and campaigns ----------------------------------------------------------------


class StationInactive(ExchangeError):
    title = "Collection point inactive"


class ForeignStation(ExchangeError):
    title = "Collection point of another department"


class NoOpenCampaign(ExchangeError):
    title = "No open campaign"


class CampaignOverlap(ExchangeError):
    title = "Campaign windows overlap"


class UnknownCategory(ExchangeError):
    title = "Unknown category"
    problem_fields = ("category",)

    def __init__(self, category: str, detail: str) -> None:
        super().__init__(detail)
        self.category = category


class CategoryNotRated(ExchangeError):
    title = "Category not on the rate card"


class QuantityOutOfBounds(ExchangeError):
    title = "Quantity out of bounds"
    problem_fields = ("minimum", "maximum", "unit")

    def __init__(self, detail: str, minimum: int, maximum: int, unit: str) -> None:
        super().__init__(detail)
        self.minimum = minimum
        self.maximum = maximum
        self.unit = unit


class WrongUnit(ExchangeError):
    title = "Wrong unit for the category"
    problem_fields = ("unit",)

    def __init__(self, detail: str, unit: str) -> None:
        super().__init__(detail)
        self.unit = unit


class DailyCapReached(ExchangeError):
    title = "Daily points cap reached"
    problem_fields = ("daily_cap", "remaining")

    def __init__(self, detail: str, daily_cap: int, remaining: int) -> None:
        super().__init__(detail)
        self.daily_cap = daily_cap
        self.remaining = remaining


class InvalidTransition(ExchangeError):
    """E.g. confirming a drop-off that was rejected, cancelling a fulfilled order."""

    title = "Not possible in the current status"
    problem_fields = ("current_status",)  # not `status`: that is the HTTP status's member

    def __init__(self, detail: str, current_status: str) -> None:
        super().__init__(detail)
        self.current_status = current_status


# --- catalog and orders --------------------------------------------------------------------


class ProductUnavailable(ExchangeError):
    title = "Product not available"


class ShortStock(ExchangeError):
    title = "Not enough stock"
    problem_fields = ("stock", "requested")

    def __init__(self, detail: str, stock: int, requested: int) -> None:
        super().__init__(detail)
        self.stock = stock
        self.requested = requested


class ShortPoints(ExchangeError):
    title = "Not enough points"
    problem_fields = ("available", "needed")

    def __init__(self, detail: str, available: int, needed: int) -> None:
        super().__init__(detail)
        self.available = available
        self.needed = needed


# --- pickup tokens -------------------------------------------------------------------------


class PickupTokenError(ExchangeError):
    title = "Invalid pickup token"


class PickupTokenMalformed(PickupTokenError):
    title = "Pickup token malformed"


class PickupTokenSignatureInvalid(PickupTokenError):
    """Forged (unknown key or wrong signature) or altered after signing."""

    title = "Pickup token signature invalid"


class PickupTokenExpired(PickupTokenError):
    title = "Pickup token expired"


class PickupTokenRevoked(PickupTokenError):
    """The order was cancelled or expired, or a newer token replaced this one."""

    title = "Pickup token revoked"


class PickupTokenForeignDepartment(PickupTokenError):
    title = "Pickup token of another department"


class AlreadyPickedUp(ExchangeError):
    title = "Already picked up"
    problem_fields = ("fulfilled_at", "fulfilled_by")

    def __init__(self, order_id: str, fulfilled_at: datetime, fulfilled_by: str) -> None:
        super().__init__(
            f"Order {order_id} was already handed over at {fulfilled_at.isoformat()} "
            f"by {fulfilled_by}."
        )
        self.fulfilled_at = fulfilled_at.isoformat()
        self.fulfilled_by = fulfilled_by


# --- summaries -----------------------------------------------------------------------------


class SummaryTooLong(ExchangeError):
    title = "Summary too long"
    problem_fields = ("characters", "limit")

    def __init__(self, characters: int, limit: int) -> None:
        super().__init__(
            f"The summary has {characters:,} characters (whitespace not counted); "
            f"the notice allows at most {limit:,}. Shorten it, then export again."
        )
        self.characters = characters
        self.limit = limit
