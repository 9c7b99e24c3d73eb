"""Domain errors of the ledger.

Each error has a stable machine ``code`` (what a client or the API layer branches on) and a
human ``message``. ``api/`` maps every class here to one problem response.
"""

from __future__ import annotations


class LedgerError(Exception):
    """Base class: something the caller asked for breaks a ledger rule."""

    code = "ledger.error"
    title = "Ledger request refused"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(LedgerError):
    """A value is malformed: non-positive amount, same account on both sides, over-long text."""

    code = "ledger.invalid_request"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class LedgerNotFound(LedgerError):
    code = "ledger.ledger_not_found"

    def __init__(self, ledger_id: str) -> None:
        super().__init__(f"ledger {ledger_id!r} does not exist")
        self.ledger_id = ledger_id


class AccountNotFound(LedgerError):
    code = "ledger.account_not_found"

    def __init__(self, ledger_id: str, account: str) -> None:
        super().__init__(f"account {account!r} does not exist in ledger {ledger_id!r}")
        self.ledger_id = ledger_id
        self.account = account


class AccountFlagsConflict(LedgerError):
    """An account exists already with other flags; flags never change after opening."""

    code = "ledger.account_flags_conflict"

    def __init__(self, account: str, existing: int, requested: int) -> None:
        super().__init__(f"account {account!r} exists with flags {existing}, not {requested}")
        self.account = account


class ExceedsCredits(LedgerError):
    """The debit would take an account with debits_must_not_exceed_credits below zero."""

    code = "ledger.exceeds_credits"

    def __init__(self, account: str, available: int, amount: int) -> None:
        super().__init__(f"account {account!r} has {available} points available, {amount} needed")
        self.account = account
        self.available = available
        self.amount = amount


class ExceedsDebits(LedgerError):
    """The credit would take an account with credits_must_not_exceed_debits past its debits."""

    code = "ledger.exceeds_debits"

    def __init__(self, account: str, room: int, amount: int) -> None:
        super().__init__(f"account {account!r} can take {room} more credits, not {amount}")
        self.account = account
        self.room = room
        self.amount = amount


class IdempotencyConflict(LedgerError):
    """The idempotency key was used before for a different request."""

    code = "ledger.idempotency_conflict"

    def __init__(self, key: str, seq: int, detail: str) -> None:
        super().__init__(
            f"idempotency key {key!r} was used for entry seq {seq} "
            f"with different content ({detail})"
        )
        self.key = key
        self.seq = seq


class TransferNotFound(LedgerError):
    code = "ledger.transfer_not_found"

    def __init__(self, ledger_id: str, seq: int) -> None:
        super().__init__(f"no entry seq {seq} in ledger {ledger_id!r}")
        self.ledger_id = ledger_id
        self.seq = seq


class NotPending(LedgerError):
    """Post or void named an entry that is not a pending transfer."""

    code = "ledger.not_pending"

    def __init__(self, seq: int, kind: str) -> None:
        super().__init__(f"entry seq {seq} is a {kind} entry, not a pending transfer")
        self.seq = seq


class PendingAlreadyResolved(LedgerError):
    code = "ledger.pending_already_resolved"

    def __init__(self, seq: int, by_seq: int, by_kind: str) -> None:
        super().__init__(
            f"pending transfer seq {seq} was already resolved by {by_kind} seq {by_seq}"
        )
        self.seq = seq
        self.by_seq = by_seq


class PendingExpired(LedgerError):
    code = "ledger.pending_expired"

    def __init__(self, seq: int) -> None:
        super().__init__(f"pending transfer seq {seq} has expired and can only be voided")
        self.seq = seq


class ExceedsPendingAmount(LedgerError):
    code = "ledger.exceeds_pending_amount"

    def __init__(self, seq: int, pending: int, amount: int) -> None:
        super().__init__(f"cannot post {amount} of pending transfer seq {seq} holding {pending}")
        self.seq = seq


class NotReversible(LedgerError):
    """Only posted transfers (direct or post entries) can be reversed."""

    code = "ledger.not_reversible"

    def __init__(self, seq: int, kind: str) -> None:
        super().__init__(f"entry seq {seq} is a {kind} entry; only direct and post entries reverse")
        self.seq = seq


class AlreadyReversed(LedgerError):
    code = "ledger.already_reversed"

    def __init__(self, seq: int, by_seq: int) -> None:
        super().__init__(f"entry seq {seq} was already reversed by seq {by_seq}")
        self.seq = seq
        self.by_seq = by_seq


class TreeSizeOutOfRange(LedgerError):
    """A proof or tree head names a size the log has not reached (or an index past it)."""

    code = "ledger.tree_size_out_of_range"


class UnknownKey(LedgerError, KeyError):
    code = "ledger.unknown_key"

    def __init__(self, kid: str) -> None:
        LedgerError.__init__(self, f"no signing key with id {kid!r}")
        self.kid = kid

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.message


class UnknownWitness(LedgerError):
    """A cosignature names a key no witness was registered with."""

    code = "ledger.unknown_witness"
    title = "Not a registered witness"

    def __init__(self, kid: str) -> None:
        super().__init__(f"no witness is registered with key id {kid!r}")


class CosignatureInvalid(LedgerError):
    """A cosignature's signature does not verify under its witness's key."""

    code = "ledger.cosignature_invalid"
    title = "Cosignature does not verify"


class HeadMismatch(LedgerError):
    """A cosignature is of a root this log never signed at that size."""

    code = "ledger.head_mismatch"
    title = "Not a head of this log"


class WitnessNameTaken(LedgerError):
    code = "ledger.witness_name_taken"
    title = "Witness name taken"
