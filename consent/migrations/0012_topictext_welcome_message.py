"""Topic text versions get a welcome message (sent once after each confirmation).

SQLite adds a column by rebuilding the table, which drops its triggers: the append-only triggers of
topic text versions are lifted first and put back after, on SQLite only (PostgreSQL adds the column
in place, keeping them, and rewrites no row).
"""

from django.db import migrations, models

from consent.migrations import _ledger_triggers as triggers

TOPIC_TEXTS = [entry for entry in triggers.PROTECTED if entry[0] == "consent_topictext"]


def lift(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        triggers.uninstall(schema_editor, TOPIC_TEXTS)


def restore(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        triggers.install(schema_editor, TOPIC_TEXTS)


class Migration(migrations.Migration):

    dependencies = [
        ("consent", "0011_care_conversations"),
    ]

    operations = [
        migrations.RunPython(lift, restore),
        migrations.AddField(
            model_name="topictext",
            name="welcome_message",
            field=models.TextField(blank=True, default="",
                                   help_text="Sent once after each confirmation; empty: the default welcome."),
        ),
        migrations.RunPython(restore, lift),
    ]
