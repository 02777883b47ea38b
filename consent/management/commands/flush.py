"""Django's flush, which the ledger's triggers refuse — except where settings allow wiping it.

Test runs (LEDGER_ALLOW_FLUSH = True) empty the database between transactional tests: the
triggers are lifted for the flush and put back after. Everywhere else flush fails on the
ledger tables, as it should.
"""

from django.conf import settings
from django.core.management.commands.flush import Command as FlushCommand
from django.db import connections

from consent.migrations import _ledger_triggers as triggers


class Command(FlushCommand):
    def handle(self, **options):
        if not getattr(settings, "LEDGER_ALLOW_FLUSH", False):
            return super().handle(**options)
        connection = connections[options.get("database") or "default"]
        with connection.schema_editor() as editor:
            triggers.uninstall(editor, triggers.ALL)
        try:
            return super().handle(**options)
        finally:
            with connection.schema_editor() as editor:
                triggers.install(editor, triggers.ALL)
