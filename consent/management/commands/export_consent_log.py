"""Export the consent ledger to FILE (CSV or JSON Lines) and write FILE.manifest.json, signed.

The command signs, so it runs where AUDIT_SIGNING_KEY is: in the signer's container.
"""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from consent.audit import signing
from consent.audit.export import FORMATS, INCLUDES, export_to_file, filters_from_params


class Command(BaseCommand):
    help = "Write the ledger (or a filtered part) to FILE and a signed FILE.manifest.json."

    def add_arguments(self, parser):
        parser.add_argument("--format", choices=FORMATS, required=True)
        parser.add_argument("--output", required=True, help="The file to write.")
        parser.add_argument("--since", help="ISO 8601; events that occurred at or after it.")
        parser.add_argument("--until", help="ISO 8601; events that occurred before it.")
        parser.add_argument("--topic", help="A topic slug.")
        parser.add_argument("--channel", help="sms or whatsapp.")
        parser.add_argument("--include", action="append", choices=INCLUDES, default=[],
                            help="Also write the staff action log to FILE.actions.jsonl (described in the manifest).")

    def handle(self, *args, **options):
        if not signing.has_private_key():
            raise CommandError(
                "export_consent_log signs its manifest and a fresh checkpoint with AUDIT_SIGNING_KEY, which only the "
                "signer holds. Run it where the signer runs (e.g. `docker compose run --rm signer python manage.py "
                "export_consent_log ...`), or stream GET /api/v1/audit/export/ and check it against the latest signed "
                "checkpoint (GET /api/v1/audit/public-key/).")
        try:
            filters = filters_from_params({k: options.get(k) for k in ("since", "until", "topic", "channel")})
        except ValidationError as exc:
            raise CommandError("; ".join(f"--{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
        try:
            result = export_to_file(path=options["output"], fmt=options["format"], filters=filters,
                                    include=tuple(options["include"]))
        except OSError as exc:
            raise CommandError(f"Cannot write {options['output']}: {exc}") from None
        manifest = result.manifest
        self.stdout.write(
            f"Wrote {manifest['count']} events (sequence {manifest['first_seq']}..{manifest['last_seq']}) to "
            f"{result.path}, manifest {result.manifest_path}; chain head #{manifest['chain_head']['seq']}."
        )
        if "actions" in manifest:
            self.stdout.write(f"Wrote {manifest['actions']['count']} staff actions to {result.path}.actions.jsonl; "
                              f"action head #{manifest['actions']['head']['seq']}.")
        if result.ledger_problem:
            raise CommandError(f"The ledger does not verify, so the export has no signed checkpoint: "
                               f"{result.ledger_problem}")
