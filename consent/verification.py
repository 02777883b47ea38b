"""Verify the ledger: recompute every hash, check sequence continuity and links, in constant memory."""

from dataclasses import dataclass, field

from .hashing import GENESIS_HASH, chain_hash
from .ledger import chained_fields, ledger_head
from .models import ConsentEvent


@dataclass
class VerificationReport:
    ok: bool
    events: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str = ""
    checked_from_seq: int = 1
    details: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "events": self.events,
            "head": {"seq": self.head_seq, "hash": self.head_hash},
            "first_bad_seq": self.first_bad_seq,
            "problem": self.problem,
            "checked_from_seq": self.checked_from_seq,
        }


def verify_chain(*, start_seq: int = 1, start_prev_hash: str = GENESIS_HASH, chunk_size: int = 5000) -> VerificationReport:
    """Walk the chain from `start_seq` (whose prev_hash must be `start_prev_hash`) to the recorded head."""
    expected_seq, prev_hash, count = start_seq, start_prev_hash, 0
    head_seq, head_hash = ledger_head()
    qs = ConsentEvent.objects.filter(seq__gte=start_seq).order_by("seq")

    def bad(seq, problem):
        return VerificationReport(ok=False, events=count, head_seq=head_seq, head_hash=head_hash,
                                  first_bad_seq=seq, problem=problem, checked_from_seq=start_seq)

    for event in qs.iterator(chunk_size=chunk_size):
        if event.seq != expected_seq:
            if event.seq > expected_seq:
                return bad(expected_seq, f"sequence gap: event {expected_seq} is missing (next is {event.seq})")
            return bad(event.seq, f"duplicate or out-of-order sequence number {event.seq}")
        if event.prev_hash != prev_hash:
            return bad(event.seq, "prev_hash does not match the previous event's hash (an event was removed or inserted)")
        if chain_hash(prev_hash, chained_fields(event)) != event.hash:
            return bad(event.seq, "hash does not match the event's content (the event was changed)")
        prev_hash = event.hash
        expected_seq += 1
        count += 1
    last_seq = expected_seq - 1
    if head_seq != last_seq or (last_seq >= start_seq and head_hash != prev_hash):
        if head_seq > last_seq:
            return bad(last_seq + 1, f"events after {last_seq} are missing (the recorded head is {head_seq})")
        return bad(last_seq, "the recorded chain head does not match the last event")
    return VerificationReport(ok=True, events=count, head_seq=head_seq, head_hash=head_hash, checked_from_seq=start_seq)
