"""Check an exported file against its signed manifest, without the database (same code as tools/verify_export.py)."""

import importlib.util
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from consent.audit.signing import public_key_pem


def load_offline_verifier():
    """tools/verify_export.py, the standalone verifier an auditor can run anywhere."""
    path = settings.BASE_DIR / "tools" / "verify_export.py"
    spec = importlib.util.spec_from_file_location("consent_tools_verify_export", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Command(BaseCommand):
    help = "Verify an export FILE against FILE.manifest.json and a public key; exit 1 on any problem."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--manifest", help="Default: FILE.manifest.json")
        parser.add_argument("--public-key", help="PEM file of the signing key (default: this service's own key).")

    def handle(self, *args, **options):
        verifier = load_offline_verifier()
        if options.get("public_key"):
            try:
                with open(options["public_key"], encoding="ascii") as handle:
                    pem = handle.read()
            except OSError as exc:
                raise CommandError(f"Cannot read {options['public_key']}: {exc}") from None
        else:
            pem = public_key_pem()
        result = verifier.verify_export(options["file"], options.get("manifest"), pem)
        for warning in result.warnings:
            self.stderr.write(f"warning: {warning}")
        if result.ok:
            self.stdout.write(f"OK: {result.count} events verified against the signed manifest.")
            return
        for problem in result.problems:
            self.stderr.write(f"FAIL: {problem}")
        sys.exit(1)
