"""The key of the phone-number pseudonym (HMAC-SHA256) in the ledger and the suppression list.

It comes from CONSENT_PSEUDONYM_KEY, never from DJANGO_SECRET_KEY, so rotating Django's secret
changes no pseudonym. In development, when it is unset, a random key is generated once under the
ignored data folder (CONSENT_PSEUDONYM_KEY_FILE); production settings refuse to start without it.
"""

import secrets
from functools import lru_cache

from django.conf import settings

from config.datadir import development_secret


def _new_key() -> bytes:
    return (secrets.token_urlsafe(48) + "\n").encode("ascii")


@lru_cache(maxsize=4)
def _key_for(configured: str, path: str) -> str:
    return configured or development_secret(path, _new_key).decode("ascii").strip()


def pseudonym_key() -> str:
    return _key_for(settings.CONSENT_PSEUDONYM_KEY or "", str(settings.CONSENT_PSEUDONYM_KEY_FILE))
