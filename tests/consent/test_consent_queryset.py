"""`Consent.objects` holds the one ORM definition of current, expired and effective status; the
per-row `consent_is_current` / `effective_status` must agree with it on every row."""

from datetime import timedelta

import pytest
from django.utils import timezone

from consent import selectors, services
from consent.models import Consent, ConsentStatus, Source, Suppression

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)

# (status, expires_at offset, confirm_by offset) → effective status at `now`.
ROWS = [
    (ConsentStatus.ACTIVE, None, None, ConsentStatus.ACTIVE),
    (ConsentStatus.ACTIVE, HOUR, None, ConsentStatus.ACTIVE),
    (ConsentStatus.ACTIVE, -HOUR, None, ConsentStatus.EXPIRED),
    (ConsentStatus.ACTIVE, timedelta(0), None, ConsentStatus.EXPIRED),
    (ConsentStatus.PENDING, None, HOUR, ConsentStatus.PENDING),
    (ConsentStatus.PENDING, None, None, ConsentStatus.PENDING),
    (ConsentStatus.PENDING, None, -HOUR, ConsentStatus.EXPIRED),
    (ConsentStatus.REVOKED, None, None, ConsentStatus.REVOKED),
    (ConsentStatus.EXPIRED, -HOUR, None, ConsentStatus.EXPIRED),
]


@pytest.fixture
def rows(topic):
    now = timezone.now()
    made = []
    for i, (status, expires, confirm_by, effective) in enumerate(ROWS):
        result = services.optin_request(phone=f"+1415555{i:04d}", topic=topic, channel="sms", source=Source.API)
        Consent.objects.filter(pk=result.consent.pk).update(
            status=status, expires_at=None if expires is None else now + expires,
            confirm_by=None if confirm_by is None else now + confirm_by)
        made.append((Consent.objects.get(pk=result.consent.pk), effective))
    return now, made


def test_with_status_matches_the_per_row_effective_status(rows):
    now, made = rows
    for consent, effective in made:
        assert selectors.effective_status(consent, now) == effective, consent
    for status in ConsentStatus.values:
        expected = {consent.pk for consent, effective in made if effective == status}
        assert set(Consent.objects.with_status(status, now).values_list("pk", flat=True)) == expected, status


def test_current_matches_consent_is_current(rows):
    now, made = rows
    expected = {consent.pk for consent, _ in made if selectors.consent_is_current(consent, now)}
    assert set(Consent.objects.current(now).values_list("pk", flat=True)) == expected
    assert len(expected) == 2


def test_expired_is_what_is_due_to_be_recorded(rows):
    now, made = rows
    expected = {consent.pk for consent, effective in made
                if effective == ConsentStatus.EXPIRED and consent.status != ConsentStatus.EXPIRED}
    assert set(Consent.objects.expired(now).values_list("pk", flat=True)) == expected
    assert len(expected) == 3


def test_messageable_leaves_out_suppressed_and_erased_contacts(rows):
    _, made = rows
    suppressed, erased = made[0][0].contact, made[1][0].contact
    Suppression.objects.create(phone_pseudonym=suppressed.phone_pseudonym, reason="test")
    type(erased).objects.filter(pk=erased.pk).update(erased_at=timezone.now())
    left = set(Consent.objects.messageable().values_list("contact_id", flat=True))
    assert suppressed.pk not in left and erased.pk not in left
    assert left == {consent.contact_id for consent, _ in made[2:]}
    erased.refresh_from_db()
    assert not selectors.contact_is_messageable(suppressed) and not selectors.contact_is_messageable(erased)
    assert selectors.contact_is_messageable(made[2][0].contact)
