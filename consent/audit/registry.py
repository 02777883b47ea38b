"""The apps that send promotional messages of their own (broadcast deliveries), as the audit sees them.

consent/ cannot import broadcasts/ (layers point down), yet the per-contact proof lists every
promotional message with the ledger event that authorised it, and verification checks those
messages against the ledger. An app registers one `PromotionalMessages` at app ready:
`for_contact(contact_id)` gives that contact's messages as JSON-ready dicts, and
`verify(chunk_size=)` checks every handed-over message and returns a `MessagesReport`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class MessagesReport:
    ok: bool
    checked: int
    first_bad: dict | None = None  # {"delivery_id": …, "authorized_by": …, "problem": …}
    details: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"ok": self.ok, "checked": self.checked, "first_bad": self.first_bad}

    def summary(self) -> str:
        if self.ok:
            return f"Promotional messages justified: {self.checked} handed-over deliveries point at a current consent event."
        bad = self.first_bad or {}
        return (f"Promotional messages NOT justified: first bad delivery {bad.get('delivery_id')} "
                f"(authorized_by {bad.get('authorized_by')}): {bad.get('problem')}")


@dataclass(frozen=True)
class PromotionalMessages:
    for_contact: Callable[[int], list[dict]]
    verify: Callable[..., MessagesReport]


_sources: dict[str, PromotionalMessages] = {}


def promotional_messages_register(name: str, source: PromotionalMessages) -> None:
    """Register (or replace) the source called `name`, e.g. "broadcasts"."""
    _sources[name] = source


def promotional_messages_for_contact(contact_id: int) -> list[dict]:
    found = []
    for source in list(_sources.values()):
        found.extend(source.for_contact(contact_id))
    return found


def promotional_messages_verify(*, chunk_size: int = 10000) -> MessagesReport:
    """Every registered source's check, combined: the first failure found is reported."""
    checked = 0
    for source in list(_sources.values()):
        report = source.verify(chunk_size=chunk_size)
        checked += report.checked
        if not report.ok:
            report.checked = checked
            return report
    return MessagesReport(ok=True, checked=checked)
