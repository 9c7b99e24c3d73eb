"""The period a report covers: a campaign, or Asia/Shanghai days from-to (inclusive)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

from exchange.campaigns import SHANGHAI, get_campaign
from exchange.errors import InvalidInput
from exchange.reports.rollups import Window

MAX_PERIOD_DAYS = 366


def midnight(day: date) -> datetime:
    """The start of an Asia/Shanghai day, in UTC."""
    return datetime.combine(day, time(), SHANGHAI).astimezone(UTC)


@dataclass(frozen=True)
class Period:
    """UTC bounds ``[start, end)`` and the Asia/Shanghai days they touch (inclusive)."""

    start: datetime
    end: datetime
    first_day: date
    last_day: date
    campaign_id: str | None = None
    campaign_name: str | None = None

    @property
    def days(self) -> tuple[date, ...]:
        count = (self.last_day - self.first_day).days + 1
        return tuple(self.first_day + timedelta(days=n) for n in range(count))

    @classmethod
    def of_days(cls, first_day: date, last_day: date) -> Period:
        return cls(
            start=midnight(first_day),
            end=midnight(last_day + timedelta(days=1)),
            first_day=first_day,
            last_day=last_day,
        )

    @property
    def whole_days(self) -> tuple[date, date] | None:
        """The first and last day the period covers from midnight to midnight, if any:
        what the rollups answer for."""
        first = self.first_day if self.start == midnight(self.first_day) else None
        first = first or self.first_day + timedelta(days=1)
        after = self.last_day + timedelta(days=1)
        last = self.last_day if self.end == midnight(after) else self.last_day - timedelta(days=1)
        return (first, last) if first <= last else None

    @property
    def windows(self) -> tuple[Window, ...]:
        """The parts of days the period covers (a campaign starting or ending within a day):
        read from the raw rows."""
        whole = self.whole_days
        if whole is None:
            return (Window(self.start, self.end),)
        found = []
        if self.start < midnight(whole[0]):
            found.append(Window(self.start, midnight(whole[0])))
        if self.end > midnight(whole[1] + timedelta(days=1)):
            found.append(Window(midnight(whole[1] + timedelta(days=1)), self.end))
        return tuple(found)

    @property
    def before_end(self) -> tuple[date, Window | None]:
        """What lies before the end: whole days before this one, and the part of the end's
        day up to the end (balances at the end of the period)."""
        day = self.end.astimezone(SHANGHAI).date()
        return day, (Window(midnight(day), self.end) if self.end > midnight(day) else None)

    def spans(self) -> list[tuple[str, date, date]]:
        """The whole days as few calendar years, months and days as cover them exactly:
        (span, first start, last start), for the participation rollup."""
        whole = self.whole_days
        if whole is None:
            return []
        found: list[tuple[str, date, date]] = []
        day, last = whole
        while day <= last:
            year_end = date(day.year, 12, 31)
            month_end = (date(day.year + day.month // 12, day.month % 12 + 1, 1)) - timedelta(
                days=1
            )
            if day == date(day.year, 1, 1) and year_end <= last:
                span, end = "year", year_end
            elif day.day == 1 and month_end <= last:
                span, end = "month", month_end
            else:
                span, end = "day", day
            if found and found[-1][0] == span == "day" and found[-1][2] + timedelta(1) == day:
                found[-1] = ("day", found[-1][1], day)
            elif found and found[-1][0] == span and span != "day":
                found[-1] = (span, found[-1][1], day)
            else:
                found.append((span, day, day))
            day = end + timedelta(days=1)
        return found


def _parse_day(name: str, text: str) -> date:
    try:
        if len(text) != 10:
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(name, "a date as YYYY-MM-DD (Asia/Shanghai)") from None


async def resolve_period(
    session: AsyncSession,
    department_id: str | None,
    *,
    campaign: str | None = None,
    date_from: str | None = None,
    date_to: str | None = None,
) -> Period:
    """A campaign (visible to the department: its own or platform-wide), or from/to dates.

    Raises InvalidInput for a missing, malformed, reversed or over-long period and NotFound
    for an unknown campaign."""
    if campaign:
        if date_from or date_to:
            raise InvalidInput("campaign", "give either a campaign or from and to, not both")
        found = await get_campaign(session, campaign, department_id)  # type: ignore[arg-type]
        last = found.ends_at - timedelta(microseconds=1)
        return Period(
            start=found.starts_at,
            end=found.ends_at,
            first_day=found.starts_at.astimezone(SHANGHAI).date(),
            last_day=last.astimezone(SHANGHAI).date(),
            campaign_id=found.id,
            campaign_name=found.name,
        )
    if not date_from or not date_to:
        raise InvalidInput("from", "give a campaign, or both from and to (YYYY-MM-DD)")
    first, last = _parse_day("from", date_from), _parse_day("to", date_to)
    if last < first:
        raise InvalidInput("to", "must not be before from")
    if (last - first).days + 1 > MAX_PERIOD_DAYS:
        raise InvalidInput("to", f"a report covers at most {MAX_PERIOD_DAYS} days")
    return Period.of_days(first, last)
