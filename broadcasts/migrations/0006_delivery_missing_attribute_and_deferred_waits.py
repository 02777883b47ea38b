from django.db import migrations, models


def local_time_waits_deferred(apps, schema_editor):
    """Rows waiting for their recipient's local time were left `queued`; they are deferred (never
    tried: no attempt, no error, unlike a retry waiting out its backoff)."""
    Delivery = apps.get_model("broadcasts", "Delivery")
    Delivery.objects.filter(status="queued", not_before__isnull=False, attempts=0, error_code="").update(status="deferred")


class Migration(migrations.Migration):

    dependencies = [
        ('broadcasts', '0005_cache_table'),
    ]

    operations = [
        migrations.AlterField(
            model_name='delivery',
            name='skip_reason',
            field=models.CharField(blank=True, choices=[('consent_not_current', 'Consent no longer current (or number suppressed)'), ('frequency_cap', 'Frequency cap for the topic reached'), ('no_number', 'Contact erased'), ('missing_attribute', 'A placeholder without fallback that the contact lacks')], max_length=32),
        ),
        migrations.AlterField(
            model_name='delivery',
            name='status',
            field=models.CharField(choices=[('queued', 'Queued'), ('deferred', 'Deferred (waiting for local time, quiet hours or a limit)'), ('sending', 'Handed to the provider'), ('sent', 'Sent'), ('delivered', 'Delivered'), ('read', 'Read'), ('failed', 'Failed'), ('skipped', 'Skipped'), ('unknown', 'Outcome unknown'), ('cancelled', 'Cancelled')], default='queued', max_length=16),
        ),
        migrations.RunPython(local_time_waits_deferred, migrations.RunPython.noop),
    ]
