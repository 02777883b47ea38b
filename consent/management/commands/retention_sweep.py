"""Erase the personal data of contacts past CONSENT_RETENTION_DAYS, or (--dry-run) list who would go and why."""

import json

from django.core.management.base import BaseCommand, CommandError

from consent.retention import retention_candidates, retention_erase


class Command(BaseCommand):
    help = ("Contacts with no current consent and nothing from them for CONSENT_RETENTION_DAYS: erase their number "
            "and attributes (the ledger stays and the number stays suppressed), or with --dry-run list them and why.")

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="List who would be erased and why; change nothing.")
        parser.add_argument("--days", type=int, help="Override CONSENT_RETENTION_DAYS for this run.")
        parser.add_argument("--limit", type=int, help="At most this many contacts.")
        parser.add_argument("--json", action="store_true", help="One JSON object per contact.")

    def handle(self, *args, dry_run=False, days=None, limit=None, json=False, **options):
        if days is not None and days < 1:
            raise CommandError("--days must be at least 1.")
        found = list(retention_candidates(days=days, limit=limit)) if dry_run else retention_erase(days=days, limit=limit)
        for candidate in found:
            if json:
                self.stdout.write(_dumps(candidate.as_dict()))
            else:
                self.stdout.write(f"contact {candidate.contact_id} ({candidate.subject[:12]}…): {candidate.reason}")
        verb = "would be erased" if dry_run else "erased"
        self.stderr.write(f"{len(found)} contact(s) {verb}.")


def _dumps(data) -> str:
    return json.dumps(data, ensure_ascii=False)
