"""What each message says, in the recipient's language, with a link to the page that acts on
it. Written once as English gettext message ids, translated by the service's one catalog
(api/locale; the caller passes the catalog of the recipient's language)."""

import gettext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from exchange.categories import CATEGORIES, Unit
from exchange.notify.models import Kind

# Asia/Shanghai has kept UTC+8 without daylight saving since 1991.
SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")


@dataclass(frozen=True)
class Text:
    subject: str
    body: str  # ends with the link; the delivery adds its id

    def for_robot(self, delivery_id: str, translations: gettext.NullTranslations) -> str:
        return f"{self.subject}\n{self.body}\n{reference_line(delivery_id, translations)}"


def reference_line(delivery_id: str, translations: gettext.NullTranslations) -> str:
    _ = translations.gettext
    return _("Message %(id)s") % {"id": delivery_id}


def local(at: datetime | str | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if at is None:
        return ""
    if isinstance(at, str):
        at = datetime.fromisoformat(at)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(SHANGHAI).strftime(fmt)


def what_was_dropped(category: str, quantity: int, language: str) -> str:
    kind = CATEGORIES.get(category)
    if kind is None:
        return category
    name = kind.name_zh if language == "zh" else kind.name_en
    if kind.unit is Unit.gram:
        tenths = (quantity + 50) // 100
        return f"{name} {tenths // 10}.{tenths % 10} kg"
    return f"{name} × {quantity}"


def kilograms(grams: int) -> str:
    tenths = (grams + 50) // 100
    return f"{tenths // 10}.{tenths % 10}"


def render(
    kind: str, facts: dict[str, Any], link: str, translations: gettext.NullTranslations
) -> Text:
    """`facts` are what the worker read about the message's subject (see worker.facts_of)."""
    _ = translations.gettext
    if kind == Kind.dropoff_confirmed:
        return Text(
            _("Drop-off confirmed: %(points)s points") % facts,
            _(
                "Your drop-off of %(what)s on %(day)s was confirmed: %(points)s points are now "
                "yours to spend."
            )
            % facts
            + "\n"
            + _("Your points: %(link)s") % {"link": link},
        )
    if kind == Kind.dropoff_rejected:
        return Text(
            _("Drop-off not accepted"),
            _("Your drop-off of %(what)s on %(day)s was not accepted: %(reason)s") % facts
            + "\n"
            + _("Your points: %(link)s") % {"link": link},
        )
    if kind == Kind.order_ready:
        return Text(
            _("Ready for pickup: %(product)s") % facts,
            _(
                "Your order of %(product)s × %(quantity)s is ready for pickup at %(place)s until "
                "%(until)s. Show the pickup code at the desk."
            )
            % facts
            + "\n"
            + _("Your pickup code: %(link)s") % {"link": link},
        )
    if kind == Kind.order_expiring:
        return Text(
            _("Pick up %(product)s by %(until)s") % facts,
            _(
                "Your order of %(product)s × %(quantity)s waits at %(place)s until %(until)s. "
                "If it is not picked up by then it is released and its points return to you."
            )
            % facts
            + "\n"
            + _("Your pickup code: %(link)s") % {"link": link},
        )
    if kind == Kind.order_released:
        said = (
            _(
                "Your order of %(product)s × %(quantity)s was not picked up by %(until)s and was "
                "released: its %(points)s points are yours to spend again."
            )
            if facts["expired"]
            else _(
                "Your order of %(product)s × %(quantity)s was cancelled by your department's "
                "coordinator: its %(points)s points are yours to spend again."
            )
        )
        return Text(
            _("Order released: %(product)s") % facts,
            said % facts + "\n" + _("Your orders: %(link)s") % {"link": link},
        )
    if kind == Kind.points_expiring:
        return Text(
            _("%(points)s points expire on %(day)s") % facts,
            _(
                "%(points)s of your points from the campaign %(campaign)s expire on %(day)s at "
                "%(time)s. Spend them on products from your village catalog before then."
            )
            % facts
            + "\n"
            + _("The catalog: %(link)s") % {"link": link},
        )
    if kind == Kind.daily_figures:
        return Text(
            _("%(department)s: the figures of %(day)s") % facts,
            _(
                "Drop-offs: %(dropoffs)s (%(confirmed)s confirmed, %(pending)s awaiting a "
                "coordinator), from %(participants)s people; paper %(paper_kg)s kg, "
                "%(items)s items.\nPoints issued: %(issued)s; orders: %(orders)s; picked up: "
                "%(picked_up)s (%(spent)s points).\nWaiting now: %(waiting)s drop-offs to "
                "confirm, %(open_orders)s orders to hand over."
            )
            % facts
            + "\n"
            + _("The report: %(link)s") % {"link": link},
        )
    if kind == Kind.department_applied:
        return Text(
            _("New department application: %(name)s") % facts,
            _(
                "%(name)s applied to join, for the village %(village)s (%(county)s, "
                "%(province)s). Contact: %(contact)s, %(phone)s."
            )
            % facts
            + "\n"
            + _("Review it: %(link)s") % {"link": link},
        )
    raise ValueError(f"no text for {kind!r}")


def trial_text(department: str, translations: gettext.NullTranslations) -> Text:
    _ = translations.gettext
    return Text(
        _("Test message from Cloud Exchange"),
        _("%(department)s's notifications reach this group.") % {"department": department},
    )
