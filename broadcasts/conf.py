"""Broadcast settings with their defaults (each may be overridden in Django settings)."""

from django.conf import settings

from messaging.providers.http import SEND_CONCURRENCY_DEFAULT

DEFAULTS = {
    # Seconds between two runs of the beat job that launches, wakes and finishes broadcasts.
    "BROADCAST_TICK_SECONDS": 5.0,
    # Deliveries handed to one send task (a contact-id range of at most this many rows).
    "BROADCAST_BATCH_SIZE": 500,
    # Rows claimed (and consent-checked) in one transaction, just before they are sent.
    "BROADCAST_CLAIM_SIZE": 32,
    # Provider calls in flight at once per worker process (threads, each with its own session).
    "BROADCAST_SEND_CONCURRENCY": SEND_CONCURRENCY_DEFAULT,
    # Messages per second per channel sender, shared by all workers; None or 0: no limit.
    "BROADCAST_RATE_LIMITS": {"sms": 10.0, "whatsapp": 80.0},
    # Attempts per delivery for transient provider errors before it fails.
    "BROADCAST_MAX_ATTEMPTS": 5,
    # A broadcast pauses itself when failed / attempted passes this, after this many attempts.
    "BROADCAST_ERROR_RATE_THRESHOLD": 0.25,
    "BROADCAST_ERROR_RATE_MIN_SAMPLE": 100,
    # A row left in `sending` this long (a crash between provider call and write) becomes `unknown`.
    "BROADCAST_UNKNOWN_AFTER_SECONDS": 120,
    # No progress for this long while rows wait: the send tasks were lost; enqueue them again.
    "BROADCAST_STALL_SECONDS": 60,
    # A brand's narrower windows and extra caps per jurisdiction (broadcasts/policies.py; narrowing only).
    "BROADCAST_QUIET_HOURS": {},
    "BROADCAST_CAPS": {},
    # Contact attribute names always accepted as {{ placeholders }} (besides phone, country).
    "BROADCAST_CONTACT_ATTRIBUTES": ["first_name", "last_name", "name"],
    "BROADCAST_FREQUENCY_WINDOW_DAYS": 7,
}


def setting(name: str):
    return getattr(settings, name, DEFAULTS[name])
