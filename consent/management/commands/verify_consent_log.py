"""Verify the consent ledger, the state rows and the staff action log (and, with --deliveries, every promotional
message): exit 0 with a summary if all hold, exit 1 naming what fails first."""

import json
import sys

from django.core.management.base import BaseCommand

from consent.audit.actions import verify_actions
from consent.audit.registry import promotional_messages_verify
from consent.verification import verify_ledger, verify_state


class Command(BaseCommand):
    help = ("Recompute every ledger hash, check the chain and the checkpoint kept outside the database, replay "
            "the ledger against the consent rows and check the staff action log; with --deliveries also check that "
            "every handed-over delivery points at a consent event current when it was claimed. Exit 1 naming the "
            "first bad sequence number, consent, action or delivery.")

    def add_arguments(self, parser):
        parser.add_argument("--resume", action="store_true",
                            help="Start from the latest valid signed checkpoint instead of the first event.")
        parser.add_argument("--deliveries", action="store_true",
                            help="Also check every handed-over broadcast delivery against the ledger.")
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")

    def handle(self, *args, resume=False, deliveries=False, json=False, **options):
        report = verify_ledger(resume=resume)
        state = verify_state()
        actions = verify_actions()
        messages = promotional_messages_verify() if deliveries else None
        ok = report.ok and state.ok and actions.ok and (messages is None or messages.ok)
        if json:
            data = {**report.as_dict(), "ok": ok, "state": state.as_dict(), "actions": actions.as_dict()}
            if messages is not None:
                data["deliveries"] = messages.as_dict()
            self.stdout.write(_dumps(data))
        else:
            self.stdout.write(report.summary())
            self.stdout.write(state.summary())
            self.stdout.write(actions.summary())
            if messages is not None:
                self.stdout.write(messages.summary())
        if not report.ok:
            where = (f"first bad sequence number {report.first_bad_seq}" if report.first_bad_seq is not None
                     else report.problem)
            self.stderr.write(f"error: the consent ledger does not verify; {where}")
        if not state.ok:
            self.stderr.write(f"error: the consent rows do not match the ledger; {state.summary()}")
        if not actions.ok:
            self.stderr.write(f"error: the staff action log does not verify; {actions.summary()}")
        if messages is not None and not messages.ok:
            self.stderr.write(f"error: a delivery is not justified by the ledger; first bad delivery "
                              f"{messages.first_bad['delivery_id']}: {messages.first_bad['problem']}")
        if not ok:
            sys.exit(1)


def _dumps(data) -> str:
    return json.dumps(data, indent=2)
