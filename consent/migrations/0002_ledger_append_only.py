"""Make the ledger append-only in the database itself, and start the chain.

UPDATE and DELETE on consent events (and on topic text versions, which events point to)
fail on PostgreSQL and SQLite, whoever issues them. Only someone who drops the triggers
can change history, and verification detects what they changed.
"""

from django.db import migrations

from consent.migrations import _ledger_triggers as triggers

GENESIS_HASH = "0" * 64


def install(apps, schema_editor):
    triggers.install(schema_editor)
    ChainHead = apps.get_model("consent", "ChainHead")
    ChainHead.objects.get_or_create(pk=1, defaults={"seq": 0, "hash": GENESIS_HASH})


def uninstall(apps, schema_editor):
    triggers.uninstall(schema_editor)


class Migration(migrations.Migration):
    dependencies = [("consent", "0001_initial")]

    operations = [migrations.RunPython(install, uninstall)]
