"""Point every active consent at the ledger event that made it current.

The latest confirmed or imported event of its contact, topic and channel, unless a revocation,
expiry or erasure follows it in the ledger; a consent with no such event keeps no pointer and
so sends nothing until it is confirmed again.
"""

from django.db import migrations
from django.db.models import Exists, OuterRef, Q, Subquery

AUTHORISING_KINDS = ("confirmed", "imported")
ENDING_KINDS = ("revoked", "expired")


def backfill(apps, schema_editor):
    Consent = apps.get_model("consent", "Consent")
    ConsentEvent = apps.get_model("consent", "ConsentEvent")
    db = schema_editor.connection.alias
    ended = ConsentEvent.objects.using(db).filter(contact_id=OuterRef("contact_id"), seq__gt=OuterRef("seq")).filter(
        Q(kind__in=ENDING_KINDS, topic_id=OuterRef("topic_id"), channel=OuterRef("channel")) | Q(kind="erased")
    )
    latest = (
        ConsentEvent.objects.using(db)
        .filter(contact_id=OuterRef("contact_id"), topic_id=OuterRef("topic_id"), channel=OuterRef("channel"),
                kind__in=AUTHORISING_KINDS)
        .exclude(Exists(ended))
        .order_by("-seq")
        .values("id")[:1]
    )
    Consent.objects.using(db).filter(status="active", current_event__isnull=True).update(current_event=Subquery(latest))


class Migration(migrations.Migration):
    dependencies = [("consent", "0004_consent_current_event")]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
