"""Data migrations of broadcasts: existing rows follow a renamed code, both ways."""

import importlib

import pytest
from django.apps import apps
from django.utils import timezone

from broadcasts.models import Delivery, DeliveryStatus, SkipReason

pytestmark = pytest.mark.django_db

skip_reason_rename = importlib.import_module("broadcasts.migrations.0010_skip_reason_not_current")


def test_skip_reason_not_current_renames_existing_rows_and_back():
    old = Delivery.objects.create(broadcast_id=1, contact_id=1, status=DeliveryStatus.SKIPPED,
                                  skip_reason="consent_not_current", created_at=timezone.now())
    other = Delivery.objects.create(broadcast_id=1, contact_id=2, status=DeliveryStatus.SKIPPED,
                                    skip_reason=SkipReason.FREQUENCY_CAP, created_at=timezone.now())

    skip_reason_rename.rename(skip_reason_rename.OLD, skip_reason_rename.NEW)(apps, None)
    old.refresh_from_db(), other.refresh_from_db()
    assert (old.skip_reason, other.skip_reason) == (SkipReason.NOT_CURRENT, SkipReason.FREQUENCY_CAP)

    skip_reason_rename.rename(skip_reason_rename.NEW, skip_reason_rename.OLD)(apps, None)
    old.refresh_from_db()
    assert old.skip_reason == "consent_not_current"
