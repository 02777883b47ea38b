"""Verify the consent ledger: exit 0 with a summary if intact, exit 1 naming the first bad sequence number."""

import json
import sys

from django.core.management.base import BaseCommand

from consent.verification import verify_ledger


class Command(BaseCommand):
    help = "Recompute every ledger hash and check the chain; exit 1 naming the first bad sequence number."

    def add_arguments(self, parser):
        parser.add_argument("--resume", action="store_true",
                            help="Start from the latest valid signed checkpoint instead of the first event.")
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")

    def handle(self, *args, resume=False, json=False, **options):
        report = verify_ledger(resume=resume)
        self.stdout.write(_dumps(report.as_dict()) if json else report.summary())
        if not report.ok:
            self.stderr.write(f"error: the consent ledger does not verify; first bad sequence number {report.first_bad_seq}")
            sys.exit(1)


def _dumps(data) -> str:
    return json.dumps(data, indent=2)
