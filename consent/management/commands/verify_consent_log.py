"""Verify the consent ledger and the state rows: exit 0 with a summary if both hold, exit 1 naming what fails."""

import json
import sys

from django.core.management.base import BaseCommand

from consent.verification import verify_ledger, verify_state


class Command(BaseCommand):
    help = ("Recompute every ledger hash, check the chain and the checkpoint kept outside the database, and replay "
            "the ledger against the consent rows; exit 1 naming the first bad sequence number or consent.")

    def add_arguments(self, parser):
        parser.add_argument("--resume", action="store_true",
                            help="Start from the latest valid signed checkpoint instead of the first event.")
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")

    def handle(self, *args, resume=False, json=False, **options):
        report = verify_ledger(resume=resume)
        state = verify_state()
        if json:
            self.stdout.write(_dumps({**report.as_dict(), "ok": report.ok and state.ok, "state": state.as_dict()}))
        else:
            self.stdout.write(report.summary())
            self.stdout.write(state.summary())
        if not report.ok:
            where = (f"first bad sequence number {report.first_bad_seq}" if report.first_bad_seq is not None
                     else report.problem)
            self.stderr.write(f"error: the consent ledger does not verify; {where}")
        if not state.ok:
            self.stderr.write(f"error: the consent rows do not match the ledger; {state.summary()}")
        if not (report.ok and state.ok):
            sys.exit(1)


def _dumps(data) -> str:
    return json.dumps(data, indent=2)
