import re

from django.db import migrations, models

LINK = re.compile(r"(/optin/confirm/)[^/\s\"'?#]+(/)")


def _redacted(value):
    if isinstance(value, str):
        return LINK.sub(r"\1[redacted]\2", value)
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    return value


def redact_stored_prompts(apps, schema_editor):
    """Prompts stored before tokens were kept out of storage: their links lose the token."""
    Message = apps.get_model("consent", "Message")
    for message in Message.objects.filter(kind="confirmation_prompt").only("body", "template").iterator():
        body, template = _redacted(message.body), _redacted(message.template)
        if (body, template) != (message.body, message.template):
            Message.objects.filter(pk=message.pk).update(body=body, template=template)


class Migration(migrations.Migration):

    dependencies = [
        ("consent", "0005_consent_current_event_backfill"),
    ]

    operations = [
        migrations.AddField(
            model_name="consent",
            name="prompted_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(redact_stored_prompts, migrations.RunPython.noop),
    ]
