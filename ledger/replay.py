"""The ledger's rules replayed over an export, in order: the core of offline verification.

A replay may also start in the middle of an export, after entries it has not seen: then it
cannot know the accounts' counters at its start, nor the pending and posted transfers before
it. It assumes what its entries state (an account's counters before its first entry here,
the amount a pending transfer from before held), records every such assumption, and
`Replay.join` checks them against the replay of the entries before. So two processes can
replay the two halves of an export at once; when a half is not clean, or an assumption does
not hold, the first replay carries on over the second half itself, and the findings are
exactly those of one replay from the start.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ledger.encoding import VERSION

DMNEC, CMNED = 1, 2  # AccountFlags, repeated so the verifier stands on its own
_ZERO = (0, 0, 0, 0)


@dataclass(frozen=True)
class Finding:
    seq: int | None  # the entry's seq (or line number for unreadable lines); None: whole log
    rule: str
    message: str

    def __str__(self) -> str:
        where = f"entry seq {self.seq}" if self.seq is not None else "log"
        return f"{where}: [{self.rule}] {self.message}"


class Entry(msgspec.Struct, gc=False):
    """A line as the verifier reads it: the fields of the canonical encoding that the rules
    read (the text fields `actor` and `reference` only count through the leaf hash), typed. A
    line that lacks one, or holds another type, is a `format` finding. Not tracked by the
    cyclic garbage collector, which would otherwise walk the structs over and over while the
    decoder allocates."""

    amount: int
    credit_account: str
    credit_after: tuple[int, int, int, int]
    credit_flags: int
    debit_account: str
    debit_after: tuple[int, int, int, int]
    debit_flags: int
    expires_at: int | None
    idempotency_key: str
    kind: str
    ledger_id: str
    ref_seq: int | None
    seq: int
    time: int
    version: int


@dataclass
class Assumptions:
    """What a replay that started after ``unseen`` entries took for granted, and what it
    ended with: all `Replay.join` needs to take it over."""

    unseen: int
    clean: bool  # no finding, and nothing it could not assume
    count: int
    ledger_id: str | None
    first_time: int | None
    last_time: int
    keys: list[str]
    accounts: dict[str, list[Any]]  # as the replay ended
    # code -> (flags, counters before its first entry here)
    counters: dict[str, tuple[int, tuple[int, ...]]] = field(default_factory=dict)
    # (pending seq, seq, kind, debit, credit, amount, time, amount held)
    resolutions: list[tuple[Any, ...]] = field(default_factory=list)
    reversals: list[tuple[int, tuple[str, str, int]]] = field(default_factory=list)  # seq, mirror


class Replay:
    """Every entry against the rules, in order.

    An account's counters after an entry are what the entry states: when the replay gives
    other numbers that is a `balance` finding, and the replay carries on from the stated
    ones, so one bad entry is one finding rather than one for every later entry of the
    account. ``unseen``: the entries start after that many others (see the module)."""

    def __init__(self, ledger_id: str | None, unseen: int = 0) -> None:
        self.ledger_id = ledger_id
        self.unseen = unseen
        self.count = unseen
        self.last_time = 0
        self.first_time: int | None = None
        self.findings: list[Finding] = []
        # Each account as [code, flags as first seen, counters after its latest entry]. The
        # code kept here is the one the posted and pending maps share, so that a million
        # entries do not keep two million copies of a few thousand account names alive.
        self.accounts: dict[str, list[Any]] = {}
        self.open_pendings: dict[int, tuple[str, str, int, int | None]] = {}  # dr, cr, amt, exp
        self.posted: dict[int, tuple[str, str, int]] = {}  # reversible entries: dr, cr, amount
        self.reversed_by: dict[int, int] = {}
        self.resolved_by: dict[int, int] = {}
        self.keys_seen: dict[str, int] = {}
        self.assumed = Assumptions(unseen, True, unseen, ledger_id, None, 0, [], self.accounts)

    def feed(self, entries: list[Entry | msgspec.DecodeError]) -> None:
        if self.first_time is None:
            self.first_time = next((e.time for e in entries if isinstance(e, Entry)), None)
        self._one_by_one(entries)

    def finish(self) -> tuple[int, list[Finding]]:
        """How many entries there were, and what broke (the accounts' sum last)."""
        accounts = self.accounts.values()
        posted_sum = sum(a[2][3] - a[2][1] for a in accounts)
        pending_sum = sum(a[2][2] - a[2][0] for a in accounts)
        if posted_sum or pending_sum:
            self.findings.append(
                Finding(
                    None, "sum_zero", f"accounts sum to {posted_sum} posted, {pending_sum} pending"
                )
            )
        return self.count, self.findings

    def assumptions(self) -> Assumptions:
        """What a replay that started in the middle assumed, and how it ended."""
        a = self.assumed
        a.clean = a.clean and not self.findings
        a.count, a.ledger_id, a.last_time = self.count, self.ledger_id, self.last_time
        a.first_time, a.keys = self.first_time, list(self.keys_seen)
        return a

    def join(self, later: Assumptions) -> bool:
        """Take over the replay of the entries right after these, if it was clean and all
        it assumed holds here; False (and nothing changed) otherwise. The last step of a
        replay: only the accounts, the count and the time carry on."""
        if not later.clean or later.unseen != self.count:
            return False
        if self.ledger_id is not None and later.ledger_id != self.ledger_id:
            return False
        if later.first_time is not None and later.first_time < self.last_time:
            return False
        if not self.keys_seen.keys().isdisjoint(later.keys):
            return False
        accounts = self.accounts
        for code, (flags, before) in later.counters.items():
            account = accounts.get(code)
            if account is None and before != _ZERO:
                return False
            if account is not None and (account[1] != flags or account[2] != before):
                return False
        for ref, _seq, kind, dr, cr, amount, time, held in later.resolutions:
            p = self.open_pendings.get(ref)
            if p is None or p[:3] != (dr, cr, held):
                return False
            expires = p[3]
            if kind == "post" and (amount > held or (expires is not None and time >= expires)):
                return False
            if kind == "void" and amount != held:
                return False
        for ref, mirror in later.reversals:
            if ref in self.reversed_by or self.posted.get(ref) != mirror:
                return False
        accounts.update(later.accounts)
        self.count, self.last_time = later.count, max(self.last_time, later.last_time)
        if self.ledger_id is None:
            self.ledger_id = later.ledger_id
        return True

    def _one_by_one(self, entries: list[Entry | msgspec.DecodeError]) -> None:
        """The rules one entry at a time, naming every break."""
        findings = self.findings
        add = findings.append
        count, last_time, ledger_id = self.count, self.last_time, self.ledger_id
        accounts = self.accounts
        open_pendings, posted = self.open_pendings, self.posted
        reversed_by, resolved_by, keys_seen = self.reversed_by, self.resolved_by, self.keys_seen
        unseen = self.unseen
        fresh = None if unseen else _ZERO  # a new account's counters: unknown after unseen entries
        assumed_counters, assumed_reversals = self.assumed.counters, self.assumed.reversals

        for e in entries:
            count += 1
            if not isinstance(e, Entry):
                add(Finding(count, "format", f"line {count} is not a ledger entry ({e})"))
                continue
            seq = e.seq
            if e.version != VERSION:
                add(Finding(seq, "format", f"unknown encoding version {e.version!r}"))
            if seq != count:
                add(
                    Finding(
                        seq, "sequence", f"found at line {count}: sequence must be gapless from 1"
                    )
                )
            lid = e.ledger_id
            if ledger_id is None:
                ledger_id = lid
            elif lid != ledger_id:
                add(Finding(seq, "ledger", f"belongs to ledger {lid!r}, not {ledger_id!r}"))
            t = e.time
            if t < last_time:
                add(
                    Finding(
                        seq, "time_order", f"time {t} is before the previous entry's {last_time}"
                    )
                )
            else:
                last_time = t
            key = e.idempotency_key
            if key in keys_seen:
                add(
                    Finding(seq, "idempotency", f"key {key!r} already used by seq {keys_seen[key]}")
                )
            keys_seen[key] = seq
            amount = e.amount
            if amount <= 0:
                add(Finding(seq, "amount", f"amount {amount!r} is not a positive integer"))
                continue
            dr_code = e.debit_account
            cr_code = e.credit_account
            if dr_code == cr_code:
                add(Finding(seq, "accounts", "debit and credit account are the same"))
                continue

            dr = accounts.get(dr_code)
            if dr is None:
                dr = accounts[dr_code] = [dr_code, e.debit_flags, fresh]
            elif dr[1] != e.debit_flags:
                add(
                    Finding(
                        seq, "flags", f"account {dr_code!r} flags {e.debit_flags}, earlier {dr[1]}"
                    )
                )
            cr = accounts.get(cr_code)
            if cr is None:
                cr = accounts[cr_code] = [cr_code, e.credit_flags, fresh]
            elif cr[1] != e.credit_flags:
                add(
                    Finding(
                        seq, "flags", f"account {cr_code!r} flags {e.credit_flags}, earlier {cr[1]}"
                    )
                )
            dr_code = dr[0]
            cr_code = cr[0]

            # What the entry does to the counters [debits_pending, debits_posted,
            # credits_pending, credits_posted]: the debit account's first two move by
            # (dp, dpo), the credit account's last two by (cp, cpo).
            kind = e.kind
            ref = e.ref_seq
            if kind == "direct":
                if ref is not None:
                    add(Finding(seq, "format", "a direct transfer refers to no other entry"))
                posted[seq] = (dr_code, cr_code, amount)
                dp, dpo, cp, cpo = 0, amount, 0, amount
            elif kind == "pending":
                open_pendings[seq] = (dr_code, cr_code, amount, e.expires_at)
                dp, dpo, cp, cpo = amount, 0, amount, 0
            elif kind == "post" or kind == "void":
                p = open_pendings.pop(ref, None)  # type: ignore[arg-type]
                if p is None and unseen and _before(ref, unseen) and ref not in resolved_by:
                    p = self._pending_before(e, dr, cr)
                if p is None:
                    why = (
                        f"already resolved by seq {resolved_by[ref]}"
                        if ref in resolved_by
                        else "not a pending transfer"
                    )
                    add(Finding(seq, "pending", f"{kind} of seq {ref}: {why}"))
                    continue
                resolved_by[ref] = seq  # type: ignore[index]
                p_dr, p_cr, held, expires = p
                if (p_dr, p_cr) != (dr_code, cr_code):
                    add(Finding(seq, "pending", f"{kind} accounts differ from pending seq {ref}"))
                if kind == "post":
                    if amount > held:
                        add(
                            Finding(
                                seq,
                                "pending",
                                f"posts {amount} of pending seq {ref} holding {held}",
                            )
                        )
                    if expires is not None and t >= expires:
                        add(Finding(seq, "pending", f"posts pending seq {ref} after it expired"))
                    posted[seq] = (dr_code, cr_code, amount)
                    dp, dpo, cp, cpo = -held, amount, -held, amount
                else:
                    if amount != held:
                        add(
                            Finding(
                                seq, "pending", f"voids {amount}, pending seq {ref} held {held}"
                            )
                        )
                    dp, dpo, cp, cpo = -held, 0, -held, 0
            elif kind == "reversal":
                target = posted.get(ref)  # type: ignore[arg-type]
                if target is None and unseen and _before(ref, unseen) and ref not in reversed_by:
                    target = (cr_code, dr_code, amount)
                    assumed_reversals.append((ref, target))
                if target is None:
                    add(Finding(seq, "reversal", f"reverses seq {ref}, not a posted transfer"))
                elif ref in reversed_by:
                    add(
                        Finding(
                            seq, "reversal", f"seq {ref} already reversed by seq {reversed_by[ref]}"
                        )
                    )
                elif target != (cr_code, dr_code, amount):
                    add(Finding(seq, "reversal", f"does not mirror seq {ref} {target}"))
                if ref is not None:
                    reversed_by.setdefault(ref, seq)
                dp, dpo, cp, cpo = 0, amount, 0, amount
            else:
                add(Finding(seq, "format", f"unknown kind {kind!r}"))
                continue

            # Both sides written out rather than a function called twice: this is the hot loop.
            b = dr[2]
            after = dr[2] = e.debit_after
            if b is None:  # first seen after the unseen entries: assumed, for `join` to check
                b = (after[0] - dp, after[1] - dpo, after[2], after[3])
                assumed_counters[dr_code] = (dr[1], b)
            replay = (b[0] + dp, b[1] + dpo, b[2], b[3])
            f = dr[1]
            if (
                replay != after
                or (f & DMNEC and after[0] + after[1] > after[3])
                or (f & CMNED and after[2] + after[3] > after[1])
            ):
                _balance_findings(add, seq, "debit", dr, replay)
            b = cr[2]
            after = cr[2] = e.credit_after
            if b is None:
                b = (after[0], after[1], after[2] - cp, after[3] - cpo)
                assumed_counters[cr_code] = (cr[1], b)
            replay = (b[0], b[1], b[2] + cp, b[3] + cpo)
            f = cr[1]
            if (
                replay != after
                or (f & DMNEC and after[0] + after[1] > after[3])
                or (f & CMNED and after[2] + after[3] > after[1])
            ):
                _balance_findings(add, seq, "credit", cr, replay)

        self.count, self.last_time, self.ledger_id = count, last_time, ledger_id

    def _pending_before(self, e: Entry, dr: list[Any], cr: list[Any]) -> tuple[str, str, int, None]:
        """A pending transfer among the unseen entries as this post or void of it shows it,
        its amount read off the counters of an account seen here before. If neither was
        (only near the start), it is taken to have held what this moves, as a void and a
        full post do; when it did not, `join` refuses, and the replay before carries on."""
        if dr[2] is not None:
            held = dr[2][0] - e.debit_after[0]
        elif cr[2] is not None:
            held = cr[2][2] - e.credit_after[2]
        else:
            held = e.amount
        self.assumed.resolutions.append(
            (e.ref_seq, e.seq, e.kind, dr[0], cr[0], e.amount, e.time, held)
        )
        return (dr[0], cr[0], held, None)


def _before(ref: object, unseen: int) -> bool:
    return isinstance(ref, int) and 0 < ref <= unseen


def _balance_findings(
    add: Callable[[Finding], None],
    seq: int,
    side: str,
    account: list[Any],
    replay: tuple[int, int, int, int],
) -> None:
    """What is wrong with one account after an entry: its stated counters (already the
    account's) against the replay, and against its flags."""
    code, flags, after = account
    if replay != after:
        add(
            Finding(
                seq,
                "balance",
                f"{side} account {code!r} stated {list(after)}, replay gives {list(replay)}",
            )
        )
    if flags & DMNEC and after[0] + after[1] > after[3]:
        add(Finding(seq, "flags", f"account {code!r} debits exceed its credits"))
    if flags & CMNED and after[2] + after[3] > after[1]:
        add(Finding(seq, "flags", f"account {code!r} credits exceed its debits"))
