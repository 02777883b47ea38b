"""The staff action log (rule 16 of docs/design.md): who changed what, when and from where.

Every change a person makes (topics and their texts, broadcasts and their actions, consents changed
by staff, imports, users and roles, erasures) is recorded by `action_record`, called at the edge
(API views, admin, commands) inside the same transaction as the change, so a change and its record
commit or roll back together and the services keep their signatures; a service that alone knows
whether it changed anything (the care inbox's) is given a `Staff` and records itself. Records are append-only in the
database (triggers, and on PostgreSQL the application role's grants) and hash-chained like the
ledger: each carries the SHA-256 of the previous one over a canonical serialisation, and the signed
checkpoints cover the chain's head, so a record changed, removed or added behind the application's
back is found by `verify_actions`.

A contact is named here by its pseudonym (as in the ledger), never by its number: erasing a person
leaves every record, and the chain, whole.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal

from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.models import Max
from django.utils import timezone

from consent.hashing import GENESIS_HASH, format_instant
from consent.models import ChainHead, StaffAction, actor_for
from consent.optin.client_ip import client_ip

from .sink import CheckpointSinkError, checkpoint_sink
from .trust import latest_valid_checkpoint, sink_record_signature_valid

ACTIONS_HEAD_ID = 2  # the staff action chain's head: a second row of the chain-head table (the ledger's is 1)

# The fields that an action's hash covers, in this order in exports.
CHAINED_FIELDS = ("seq", "uuid", "occurred_at", "actor", "action", "object_type", "object_id", "object_repr",
                  "before", "after", "ip", "via")
ROW_FIELDS = CHAINED_FIELDS + ("prev_hash", "hash")


class Via:
    API = "api"
    ADMIN = "admin"
    COMMAND = "command"


# --- canonical form and hashing (pure) ---------------------------------------------------------


def jsonable(value):
    """A before/after value as it reads back from any JSON column: JSON types only, times as the chain writes them."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return repr(value)  # floats do not survive every JSON store identically
    if isinstance(value, datetime):
        return format_instant(value)
    if isinstance(value, (date, time, Decimal)):
        return value.isoformat() if not isinstance(value, Decimal) else str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [jsonable(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, (set, frozenset)) else items
    return str(value)


def canonical_bytes(fields: dict) -> bytes:
    payload = {name: fields[name] for name in CHAINED_FIELDS}
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def action_hash(prev_hash: str, fields: dict) -> str:
    """SHA-256 over the previous hash and the canonical action (as the ledger's chain_hash)."""
    digest = hashlib.sha256()
    digest.update(prev_hash.encode("ascii", "replace"))
    digest.update(b"\n")
    digest.update(canonical_bytes(fields))
    return digest.hexdigest()


def chained_fields_from_row(row: tuple) -> dict:
    """The chained fields of a ROW_FIELDS tuple, as the hash sees them."""
    fields = dict(zip(CHAINED_FIELDS, row, strict=False))
    fields["uuid"] = str(fields["uuid"])
    fields["occurred_at"] = format_instant(fields["occurred_at"])
    return fields


# --- appending -------------------------------------------------------------------------------


def actions_head() -> tuple[int, str]:
    head = ChainHead.objects.filter(pk=ACTIONS_HEAD_ID).values_list("seq", "hash").first()
    return head if head else (0, GENESIS_HASH)


def _lock_head() -> ChainHead:
    if not connection.in_atomic_block:
        raise RuntimeError("action_record must run inside transaction.atomic(), with the change it records")
    # Row-locked until the caller's transaction ends (SQLite's IMMEDIATE transactions already admit one writer).
    head = ChainHead.objects.select_for_update().filter(pk=ACTIONS_HEAD_ID).first()
    if head is None:
        ChainHead.objects.get_or_create(pk=ACTIONS_HEAD_ID, defaults={"seq": 0, "hash": GENESIS_HASH})
        head = ChainHead.objects.select_for_update().get(pk=ACTIONS_HEAD_ID)
    return head


def action_append(*, actor: str, action: str, object_type: str, object_id="", object_repr: str = "",
                  before=None, after=None, ip: str = "", via: str, occurred_at: datetime | None = None) -> StaffAction:
    """Append one staff action to its chain, in the caller's transaction (the one that made the change)."""
    head = _lock_head()
    record = StaffAction(
        seq=head.seq + 1, occurred_at=occurred_at or timezone.now(), actor=actor[:160], action=action[:64],
        object_type=object_type[:32], object_id=str(object_id)[:64], object_repr=str(object_repr)[:200],
        before=jsonable(before), after=jsonable(after), ip=(ip or "")[:45], via=via, prev_hash=head.hash,
    )
    record.hash = action_hash(head.hash, chained_fields_from_row(tuple(getattr(record, f) for f in CHAINED_FIELDS)))
    record.save(force_insert=True)
    ChainHead.objects.filter(pk=ACTIONS_HEAD_ID).update(seq=record.seq, hash=record.hash)
    return record


def action_record(*, request=None, actor: str | None = None, action: str, object_type: str, object_id="",
                  object_repr: str = "", before=None, after=None, via: str | None = None,
                  ip: str = "") -> StaffAction:
    """The one way a staff action is recorded: the actor and IP from the request (API or admin), or given
    (commands, and services that record their own change: see `Staff`)."""
    if request is not None:
        actor = actor or actor_for(getattr(request, "user", None))
        ip = client_ip(request)
        via = via or Via.API
    else:
        via = via or Via.COMMAND
    if not actor:
        raise ValueError("a staff action needs its actor")
    return action_append(actor=actor, action=action, object_type=object_type, object_id=object_id,
                         object_repr=object_repr, before=before, after=after, ip=ip, via=via)


@dataclass(frozen=True)
class Staff:
    """Who makes a change and from where, handed to a service that records its own staff action because
    only it knows, under its row locks, whether anything changed and what was there before."""

    actor: str
    ip: str = ""
    via: str = Via.API

    @classmethod
    def from_request(cls, request, *, via: str = Via.API) -> Staff:
        return cls(actor=actor_for(getattr(request, "user", None)), ip=client_ip(request), via=via)

    def record(self, **fields) -> StaffAction:
        """`action_record` with this actor, IP and way in."""
        return action_record(actor=self.actor, ip=self.ip, via=self.via, **fields)


def changed(before: dict | None, after: dict | None) -> tuple[dict | None, dict | None]:
    """Only the keys whose values differ (both sides), so a record shows what the change was."""
    if before is None or after is None:
        return before, after
    keys = [k for k in sorted(set(before) | set(after)) if jsonable(before.get(k)) != jsonable(after.get(k))]
    return {k: before.get(k) for k in keys}, {k: after.get(k) for k in keys}


def action_as_dict(record: StaffAction) -> dict:
    """A staff action as listed and exported (documented in docs/audit.md)."""
    return {
        "sequence": record.seq, "action_id": str(record.uuid), "occurred_at": format_instant(record.occurred_at),
        "actor": record.actor, "action": record.action, "object_type": record.object_type,
        "object_id": record.object_id, "object_repr": record.object_repr, "before": record.before,
        "after": record.after, "ip": record.ip, "via": record.via, "prev_hash": record.prev_hash, "hash": record.hash,
    }


# --- verification ------------------------------------------------------------------------------


@dataclass
class ActionsReport:
    ok: bool
    actions: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str = ""

    def as_dict(self) -> dict:
        data = {"ok": self.ok, "actions": self.actions, "head": {"seq": self.head_seq, "hash": self.head_hash}}
        if not self.ok:
            data.update(first_bad_seq=self.first_bad_seq, problem=self.problem)
        return data

    def summary(self) -> str:
        if self.ok:
            return f"Staff action log intact: {self.actions} actions verified; head #{self.head_seq} {self.head_hash}."
        if self.first_bad_seq is None:
            return f"Staff action log NOT verified: {self.problem}"
        return f"Staff action log NOT intact: first bad action {self.first_bad_seq}: {self.problem}"


def verify_actions(*, chunk_size: int = 5000) -> ActionsReport:
    """Recompute every action's hash and link, the recorded head, and the signed action heads of the checkpoints.

    The chain must pass through the action head of the latest valid checkpoint in the database and
    of the latest one in the sink outside it, so removing or rewriting the tail is caught too.
    """
    try:
        external = checkpoint_sink().latest()
    except (CheckpointSinkError, ImproperlyConfigured) as exc:
        head_seq, head_hash = actions_head()
        return ActionsReport(False, 0, head_seq, head_hash,
                             problem=f"the checkpoint sink cannot be read, so the tail cannot be checked: {exc}")
    head_seq, head_hash = actions_head()
    anchors = []
    found = latest_valid_checkpoint()
    if found is not None and found[0].actions_seq is not None:
        anchors.append((found[0].actions_seq, found[0].actions_hash, "the latest signed checkpoint"))
    if external is not None and external.get("actions") and sink_record_signature_valid(external):
        anchors.append((external["actions"].get("seq"), external["actions"].get("hash"),
                        f"the checkpoint kept outside the database ({external.get('location') or 'the sink'})"))
    count, expected, prev = 0, 1, GENESIS_HASH

    def bad(seq, problem):
        return ActionsReport(False, count, head_seq, head_hash, first_bad_seq=seq, problem=problem)

    hashes = {}
    anchor_seqs = {a[0] for a in anchors}
    last = 0
    while True:
        chunk = list(StaffAction.objects.filter(seq__gt=last, seq__lte=head_seq).order_by("seq")
                     .values_list(*ROW_FIELDS)[:chunk_size])
        for row in chunk:
            seq = row[0]
            if seq != expected:
                return bad(expected, f"sequence gap: action {expected} is missing (next is {seq})")
            if row[12] != prev:
                return bad(seq, "prev_hash does not match the previous action's hash (an action was removed or inserted)")
            if action_hash(prev, chained_fields_from_row(row)) != row[13]:
                return bad(seq, "hash does not match the action's content (the action was changed)")
            if seq in anchor_seqs:
                hashes[seq] = row[13]
            prev, expected, count = row[13], expected + 1, count + 1
        if len(chunk) < chunk_size:
            break
        last = chunk[-1][0]
    if expected - 1 < head_seq:
        return bad(expected, f"actions from {expected} on are missing (the recorded head is {head_seq})")
    if head_seq and prev != head_hash:
        return bad(head_seq, "the recorded head does not match the last action")
    beyond = StaffAction.objects.aggregate(m=Max("seq"))["m"] or 0
    if beyond > actions_head()[0]:
        return bad(head_seq + 1, f"action {beyond} lies beyond the recorded head (inserted behind the application's back)")
    if StaffAction.objects.filter(seq__lte=head_seq).count() != head_seq:
        return bad(1, "the number of actions does not match the sequence numbers")
    for seq, signed_hash, where in anchors:
        if seq > head_seq:
            return bad(head_seq + 1, f"the log ends at #{head_seq}, before the action head #{seq} signed in {where}: "
                                     "actions were removed")
        if seq and hashes.get(seq) != signed_hash:
            return bad(seq, f"the chain no longer passes through the action head #{seq} signed in {where}: "
                            "the log was rewritten")
    return ActionsReport(True, count, head_seq, head_hash)


# --- what the records say about the objects staff change ------------------------------------------


def topic_snapshot(topic) -> dict:
    """A topic as a staff action records it: its settings and its current text version (words and hash)."""
    text = topic.current_text
    return {"slug": topic.slug, "name": topic.name, "keywords": list(topic.keywords or []),
            "consent_ttl_days": topic.consent_ttl_days, "text_version": text.version if text else None,
            "text_sha256": text.sha256 if text else None,
            "consent_text": text.consent_text if text else None,
            "confirmation_message": text.confirmation_message if text else None,
            "help_message": text.help_message if text else None,
            "welcome_message": text.welcome_message if text else None}


def consents_snapshot(consents) -> list[dict]:
    """Consents as a staff action records them (no number: the contact is the action's object, by pseudonym)."""
    return [{"topic": c.topic.slug, "channel": c.channel, "status": c.status} for c in consents]


def consent_statuses(contact) -> dict[tuple[int, str], str]:
    """(topic id, channel) → status of a contact's consents, read before a revocation for its record."""
    return {(topic_id, channel): status for topic_id, channel, status in
            contact.consents.values_list("topic_id", "channel", "status")}


def revocation_snapshots(was: dict[tuple[int, str], str], revoked) -> tuple[dict, dict]:
    """Before and after of a revocation made by staff: each revoked consent's status before (`was`) and now."""
    now = consents_snapshot(revoked)
    return ({"consents": [{**row, "status": was.get((c.topic_id, c.channel))} for c, row in zip(revoked, now, strict=True)]},
            {"consents": now})


def contact_object(contact) -> dict:
    """The object fields naming a contact: its pseudonym, never its number."""
    return {"object_type": "contact", "object_id": contact.phone_pseudonym[:64],
            "object_repr": f"contact {contact.pk}"}


def review_action_record(*, request, review, via: str | None = None) -> StaffAction:
    """A person's decision on a revocation review (rule 11), as a staff action."""
    return action_record(request=request, action="revocation_review.resolve", object_type="revocation_review",
                         object_id=str(review.pk), object_repr=f"review {review.pk} of contact {review.contact_id}",
                         before={"decision": ""}, after={"decision": review.decision, "note": review.note,
                                                          "revoked": review.revoked}, via=via)
