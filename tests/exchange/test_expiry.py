"""Points expiry: which points are a campaign's (first in, first out), the reminder before, and
the expiry itself — exactly once per employee and campaign, never points held by an open
order or issued by another campaign, and a ledger the offline verifier accepts."""

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.db import transaction
from catalog.departments import NewDepartment, register_department
from catalog.identity import Identity, load_identity
from catalog.models import DepartmentStatus, Product, Role, User, UserRole
from exchange import campaigns
from exchange.campaigns import NewCampaign
from exchange.dropoffs import confirm_dropoff, log_dropoff, reject_dropoff
from exchange.errors import ExchangeError
from exchange.expiry import EXPIRY, expires_at, replay, sweep_expiry
from exchange.models import PointsExpiry
from exchange.notify.models import Message
from exchange.orders import cancel_order, place_order, sweep_expired_orders
from exchange.pickup import redeem, sign
from exchange.points import user_account
from exchange.stations import create_station
from ledger.accounts import get_account
from ledger.encoding import Entry
from ledger.errors import AccountNotFound
from ledger.queries import export_lines, list_entries
from ledger.signing import KeyRing
from ledger.verify import verify_export

Factory = async_sessionmaker[AsyncSession]
T0 = datetime(2026, 6, 1, tzinfo=UTC)
ORDER_LIFE = timedelta(days=3)
REMIND = timedelta(days=3)
RATE = 10  # points per ink cartridge
PRICE = 15


# --- first in, first out, on entries alone -----------------------------------------------


def entry(
    seq: int,
    kind: str,
    debit: str,
    credit: str,
    amount: int,
    reference: str = "",
    ref_seq: int | None = None,
) -> Entry:
    return Entry(
        ledger_id="d", seq=seq, kind=kind, time_us=seq, debit_account=debit,
        credit_account=credit, amount=amount, ref_seq=ref_seq, expires_at_us=None,
        reference=reference, actor="a", idempotency_key=f"k{seq}", debit_flags=0,
        credit_flags=0, dr_debits_pending=0, dr_debits_posted=0, dr_credits_pending=0,
        dr_credits_posted=0, cr_debits_pending=0, cr_debits_posted=0, cr_credits_pending=0,
        cr_credits_posted=0,
    )  # fmt: skip


CAMPAIGN_OF = {"dropoff:1": "spring", "dropoff:2": "summer", "dropoff:3": "spring"}
U = "user:u"


def lots(*entries: Entry) -> dict[str | None, int]:
    found = replay(U, entries, CAMPAIGN_OF.get)
    assert found.consistent
    return found.by_campaign


def test_spending_takes_the_oldest_points_first() -> None:
    assert lots(
        entry(1, "direct", "issuance", U, 100, "dropoff:1"),
        entry(2, "direct", "issuance", U, 50, "dropoff:2"),
        entry(3, "pending", U, "redemption", 120, "order:a"),
        entry(4, "post", U, "redemption", 120, "order:a", ref_seq=3),
    ) == {"spring": 0, "summer": 30}


def test_a_released_hold_gives_its_points_back_to_the_lots_it_took_them_from() -> None:
    assert lots(
        entry(1, "direct", "issuance", U, 100, "dropoff:1"),
        entry(2, "pending", U, "redemption", 80, "order:a"),
        entry(3, "direct", "issuance", U, 50, "dropoff:2"),
        entry(4, "void", U, "redemption", 80, "order:a", ref_seq=2),
    ) == {"spring": 100, "summer": 50}


def test_a_held_point_is_not_a_campaigns_to_expire_and_a_partial_post_keeps_the_oldest() -> None:
    held = lots(
        entry(1, "direct", "issuance", U, 30, "dropoff:1"),
        entry(2, "direct", "issuance", U, 30, "dropoff:2"),
        entry(3, "pending", U, "redemption", 40, "order:a"),
    )
    assert held == {"spring": 0, "summer": 20}
    assert lots(
        entry(1, "direct", "issuance", U, 30, "dropoff:1"),
        entry(2, "direct", "issuance", U, 30, "dropoff:2"),
        entry(3, "pending", U, "redemption", 40, "order:a"),
        entry(4, "post", U, "redemption", 25, "order:a", ref_seq=3),  # 15 released
    ) == {"spring": 5, "summer": 30}


def test_pending_credits_are_not_points_until_posted_and_an_expiry_takes_its_own_campaign() -> None:
    assert lots(
        entry(1, "pending", "issuance", U, 40, "dropoff:1"),
        entry(2, "direct", "issuance", U, 60, "dropoff:2"),
        entry(3, "post", "issuance", U, 30, "dropoff:1", ref_seq=1),
        entry(4, "direct", "issuance", U, 5, "dropoff:3"),
        entry(5, "direct", U, EXPIRY, 35, "expiry:spring"),
    ) == {"spring": 0, "summer": 60}
    too_much = replay(
        U,
        [
            entry(1, "direct", "issuance", U, 10, "dropoff:1"),
            entry(2, "direct", U, EXPIRY, 11, "expiry:spring"),
        ],
        CAMPAIGN_OF.get,
    )
    assert not too_much.consistent


# --- the real thing, on both databases ---------------------------------------------------


@dataclass
class Lot:
    campaign: str
    left: int


@dataclass
class Person:
    """The model: each employee's lots as the exchange's own events made them."""

    user_id: str
    lots: list[Lot] = field(default_factory=list)
    holds: dict[str, list[tuple[Lot, int]]] = field(default_factory=dict)
    earned: set[str] = field(default_factory=set)  # campaigns with a confirmed credit

    def credit(self, campaign: str, points: int) -> None:
        self.lots.append(Lot(campaign, points))
        self.earned.add(campaign)

    def hold(self, order_id: str, points: int) -> None:
        taken = []
        for lot in self.lots:
            n = min(lot.left, points)
            if n:
                lot.left -= n
                points -= n
                taken.append((lot, n))
        assert points == 0, "the exchange let an order hold more points than were available"
        self.holds[order_id] = taken

    def release(self, order_id: str) -> None:
        for lot, n in self.holds.pop(order_id):
            lot.left += n

    def left(self, campaign: str | None = None) -> int:
        return sum(lot.left for lot in self.lots if campaign in (None, lot.campaign))

    def expire(self, campaign: str) -> int:
        points = self.left(campaign)
        for lot in self.lots:
            if lot.campaign == campaign:
                lot.left = 0
        return points


@dataclass
class World:
    department_id: str
    coordinator: Identity
    employees: list[Identity]
    station_code: str
    product_id: str
    campaign_ids: list[str]
    people: dict[str, Person]


async def make_world(session_factory: Factory, expiries: list[dict]) -> World:
    async with transaction(session_factory) as session:
        name = f"部门-{uuid.uuid4().hex[:8]}"
        department = await register_department(
            session,
            NewDepartment(name, f"{name}村", "县", "省", "联系人", "0731", "一楼"),
            actor_id="admin",
        )
        department.status = DepartmentStatus.approved
        session.add(department)
        ids = []
        for username, role in (
            ("coord", Role.coordinator),
            ("emp1", Role.employee),
            ("emp2", Role.employee),
        ):
            user = User(
                username=f"{username}-{department.id}",
                display_name=username,
                password_hash="-",
                department_id=department.id,
            )
            session.add(user)
            await session.flush()
            session.add(UserRole(user_id=user.id, role=role))
            ids.append(user.id)
        await session.flush()
        campaign_ids = []
        for n, (policy, expiry) in enumerate(zip(("steward", "auto"), expiries, strict=True)):
            campaign = await campaigns.create_campaign(
                session,
                NewCampaign(
                    name=f"第{n + 1}期",
                    starts_at=T0 + timedelta(days=5 * n),
                    ends_at=T0 + timedelta(days=5 * (n + 1)),
                    policy=policy,
                    daily_cap_points=100_000,
                    department_id=department.id,
                    **expiry,
                ),
                "admin",
            )
            await campaigns.set_rates(session, campaign.id, {"ink_cartridge": RATE}, "admin")
            campaign_ids.append(campaign.id)
        station = await create_station(
            session, department.id, name="大厅", location="", actor_id=ids[0]
        )
        product = Product(
            department_id=department.id,
            name="大米",
            unit="袋",
            price_points=PRICE,
            value_fen=100,
            stock=10_000,
            created_by=ids[0],
            updated_by=ids[0],
        )
        session.add(product)
        await session.flush()
        callers = [await load_identity(session, user_id) for user_id in ids]
    assert all(callers)
    return World(
        department.id,
        callers[0],  # type: ignore[arg-type]
        callers[1:],  # type: ignore[arg-type]
        station.code,
        product.id,
        campaign_ids,
        {c.user_id: Person(c.user_id) for c in callers[1:]},  # type: ignore[union-attr]
    )


# Drop-offs and sweeps come more often than the rest, so that most examples have points to
# expire and a sweep inside the reminder window.
step = st.one_of(
    st.tuples(st.just("drop"), st.integers(0, 1), st.integers(1, 8)),
    st.tuples(st.just("drop"), st.integers(0, 1), st.integers(1, 8)),
    st.tuples(st.just("decide"), st.integers(0, 50), st.integers(0, 3).map(bool)),
    st.tuples(st.just("order"), st.integers(0, 1), st.integers(1, 3)),
    st.tuples(st.just("cancel"), st.integers(0, 50)),
    st.tuples(st.just("pickup"), st.integers(0, 50)),
    st.tuples(st.just("sweep")),
    st.tuples(st.just("sweep")),
)
expiry = st.one_of(
    st.none(),
    st.integers(0, 6).map(lambda days: {"points_expire_days": days}),
    st.integers(0, 6 * 24).map(lambda hours: {"points_expire_hours": hours}),
)


def expiry_of(drawn: dict | None, ends: datetime) -> dict:
    if drawn is None:
        return {}
    if "points_expire_hours" in drawn:
        return {"points_expire_at": ends + timedelta(hours=drawn["points_expire_hours"])}
    return drawn


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    steps=st.lists(st.tuples(step, st.integers(0, 12)), min_size=10, max_size=40),
    expiries=st.tuples(expiry, expiry),
)
async def test_expiry_never_takes_held_or_other_campaigns_points_and_happens_once(
    session_factory: Factory, tmp_path_factory: pytest.TempPathFactory, steps: list, expiries: tuple
) -> None:
    drawn = [expiry_of(e, T0 + timedelta(days=5 * (n + 1))) for n, e in enumerate(expiries)]
    world = await make_world(session_factory, drawn)
    keyring = KeyRing.load_or_create(tmp_path_factory.mktemp("keys"))
    now = T0
    pending: list[tuple[str, str, str]] = []  # drop-off id, user, campaign
    orders: dict[str, str] = {}  # open order -> user
    expired: dict[tuple[str, str], int] = {}  # (user, campaign) -> points the model expected

    async def sweep() -> None:
        released = await _expired_orders(session_factory, world, now)
        for order_id in released:
            world.people[orders.pop(order_id)].release(order_id)
        async with transaction(session_factory) as session:
            due = [
                c
                for c in await _campaigns(session, world)
                if (at := expires_at(c)) is not None and at <= now and c.expiry_done_at is None
            ]
        for campaign in due:
            for person in world.people.values():
                if campaign.id in person.earned and (person.user_id, campaign.id) not in expired:
                    if person.holds:
                        event("an expiry while the employee had points held")
                    expired[(person.user_id, campaign.id)] = person.expire(campaign.id)
        await sweep_expiry(session_factory, now, REMIND)

    for (op, *args), hours in steps:
        now += timedelta(hours=hours)
        try:
            async with transaction(session_factory) as session:
                if op == "drop":
                    caller = world.employees[args[0]]
                    logged = await log_dropoff(
                        session, caller, station_code=world.station_code,
                        category_code="ink_cartridge", quantity=args[1],
                        idempotency_key=uuid.uuid4().hex, now=now,
                    )  # fmt: skip
                    dropoff = logged.dropoff
                    if dropoff.status == "confirmed":
                        world.people[caller.user_id].credit(dropoff.campaign_id, dropoff.points)
                    else:
                        pending.append((dropoff.id, caller.user_id, dropoff.campaign_id))
                elif op == "decide" and pending:
                    dropoff_id, user_id, campaign_id = pending.pop(args[0] % len(pending))
                    if args[1]:
                        decided = await confirm_dropoff(
                            session, world.department_id, dropoff_id,
                            world.coordinator.user_id, now=now,
                        )  # fmt: skip
                        world.people[user_id].credit(campaign_id, decided.points)
                    else:
                        await reject_dropoff(
                            session, world.department_id, dropoff_id,
                            world.coordinator.user_id, reason="不符合", now=now,
                        )  # fmt: skip
                elif op == "order":
                    caller = world.employees[args[0]]
                    placed = await place_order(
                        session, caller, keyring, product_id=world.product_id,
                        quantity=args[1], idempotency_key=uuid.uuid4().hex,
                        expiry=ORDER_LIFE, now=now,
                    )  # fmt: skip
                    world.people[caller.user_id].hold(placed.order.id, placed.order.points)
                    orders[placed.order.id] = caller.user_id
                elif op in ("cancel", "pickup") and orders:
                    order_id = sorted(orders)[args[0] % len(orders)]
                    owner = next(c for c in world.employees if c.user_id == orders[order_id])
                    if op == "cancel":
                        await cancel_order(session, owner, order_id, now=now)
                        world.people[orders.pop(order_id)].release(order_id)
                    else:
                        order = await _order(session, world, order_id)
                        if order.expires_at <= now:
                            continue  # the desk refuses it; the sweep releases it
                        await redeem(
                            session, keyring, sign(keyring, order),
                            coordinator_id=world.coordinator.user_id,
                            coordinator_department_id=world.department_id, now=now,
                        )  # fmt: skip
                        world.people[orders.pop(order_id)].holds.pop(order_id)
        except ExchangeError:
            continue  # refused (no open campaign, not enough points): nothing happened
        if op == "sweep":
            await sweep()
        await _check(session_factory, world, orders)

    now += timedelta(days=30)  # every expiry has come
    await sweep()
    await _check(session_factory, world, orders)
    async with transaction(session_factory) as session:
        records = {
            (r.user_id, r.campaign_id): r
            for r in (
                await session.exec(
                    select(PointsExpiry).where(PointsExpiry.department_id == world.department_id)
                )
            ).all()
        }
        entries = (await list_entries(session, world.department_id, limit=500)).entries
        messages = (
            await session.exec(
                select(Message).where(
                    Message.department_id == world.department_id,
                    Message.kind == "points_expiring",
                )
            )
        ).all()
        lines = (
            [line async for line in export_lines(session, world.department_id)] if entries else []
        )
    event(f"expiries with points: {sum(1 for p in expired.values() if p)}")
    event(f"reminders: {len(messages)}")
    # Exactly once per employee and campaign, and just what the model said was left.
    assert {key: r.expired_points for key, r in records.items() if r.expired_at} == expired
    expiry_entries = [e for e in entries if e.credit_account == EXPIRY]
    assert sorted(e.idempotency_key for e in expiry_entries) == sorted(
        f"expiry:{c}:{u}" for (u, c), points in expired.items() if points > 0
    )
    for e in expiry_entries:
        user_id, campaign_id = e.debit_account.removeprefix("user:"), e.reference.split(":")[1]
        assert e.amount == expired[(user_id, campaign_id)]
    # A reminder, where one went out, came before the expiry.
    for message in messages:
        record = records[(message.recipient_id, message.reference)]
        assert record.expired_at is not None and message.created_at < record.expired_at
    assert verify_export(lines) == []


async def _check(session_factory: Factory, world: World, orders: dict[str, str]) -> None:
    """The ledger agrees with the model: nothing held was touched, nothing went negative."""
    async with transaction(session_factory) as session:
        for person in world.people.values():
            try:
                balance = await get_account(
                    session, world.department_id, user_account(person.user_id)
                )
            except AccountNotFound:
                assert person.left() == 0
                continue
            held = sum(n for taken in person.holds.values() for _, n in taken)
            assert balance.held == held
            assert balance.available == person.left() >= 0


async def _expired_orders(session_factory: Factory, world: World, now: datetime) -> list[str]:
    from exchange.models import Order

    async with transaction(session_factory) as session:
        found = await session.exec(
            select(Order.id).where(
                Order.department_id == world.department_id,
                Order.status == "reserved",
                col(Order.expires_at) <= now,
            )
        )
        due = list(found.all())
    await sweep_expired_orders(session_factory, now=now)
    return due


async def _campaigns(session: AsyncSession, world: World) -> list:
    from exchange.models import Campaign

    found = await session.exec(select(Campaign).where(col(Campaign.id).in_(world.campaign_ids)))
    return list(found.all())


async def _order(session: AsyncSession, world: World, order_id: str):  # type: ignore[no-untyped-def]
    from exchange.models import Order

    order = await session.get(Order, (world.department_id, order_id))
    assert order is not None
    return order
