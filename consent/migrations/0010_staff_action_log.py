"""The staff action log (rule 16): an append-only, hash-chained table, and checkpoints that cover its head.

UPDATE and DELETE on staff actions fail on PostgreSQL and SQLite, as on the ledger; the chain's head
is a second row of the chain-head table (id 2), which the application role may move but never delete.
"""

import uuid
from django.db import migrations, models

from consent.migrations import _ledger_triggers as triggers

GENESIS_HASH = "0" * 64
ACTIONS_HEAD_ID = 2


def install(apps, schema_editor):
    triggers.install(schema_editor, triggers.STAFF_ACTIONS)
    ChainHead = apps.get_model("consent", "ChainHead")
    ChainHead.objects.get_or_create(pk=ACTIONS_HEAD_ID, defaults={"seq": 0, "hash": GENESIS_HASH})


def uninstall(apps, schema_editor):
    triggers.uninstall(schema_editor, triggers.STAFF_ACTIONS)
    apps.get_model("consent", "ChainHead").objects.filter(pk=ACTIONS_HEAD_ID).delete()


class Migration(migrations.Migration):

    dependencies = [
        ('consent', '0009_source_preference_centre'),
    ]

    operations = [
        migrations.AddField(
            model_name='ledgercheckpoint',
            name='actions_hash',
            field=models.CharField(blank=True, default='', max_length=64),
        ),
        migrations.AddField(
            model_name='ledgercheckpoint',
            name='actions_seq',
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.CreateModel(
            name='StaffAction',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('seq', models.BigIntegerField(unique=True)),
                ('uuid', models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                ('occurred_at', models.DateTimeField()),
                ('actor', models.CharField(help_text='Who did it, e.g. "user:alice".', max_length=160)),
                ('action', models.CharField(help_text='What, e.g. "topic.update" or "broadcast.schedule".', max_length=64)),
                ('object_type', models.CharField(max_length=32)),
                ('object_id', models.CharField(blank=True, max_length=64)),
                ('object_repr', models.CharField(blank=True, max_length=200)),
                ('before', models.JSONField(blank=True, null=True)),
                ('after', models.JSONField(blank=True, null=True)),
                ('ip', models.CharField(blank=True, help_text='Where the request came from (empty for commands).', max_length=45)),
                ('via', models.CharField(help_text='api, admin or command.', max_length=16)),
                ('prev_hash', models.CharField(max_length=64)),
                ('hash', models.CharField(max_length=64)),
            ],
            options={
                'ordering': ['seq'],
                'indexes': [models.Index(fields=['actor', 'seq'], name='staffaction_actor_idx'), models.Index(fields=['action', 'seq'], name='staffaction_action_idx'), models.Index(fields=['occurred_at'], name='staffaction_occurred_idx')],
            },
        ),
        migrations.RunPython(install, uninstall),
    ]
