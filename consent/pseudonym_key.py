"""The key of the phone-number pseudonym (HMAC-SHA256) in the ledger and the suppression list.

It comes from CONSENT_PSEUDONYM_KEY, never from DJANGO_SECRET_KEY, so rotating Django's secret
changes no pseudonym. In development, when it is unset, a random key is generated once under the
ignored data folder (CONSENT_PSEUDONYM_KEY_FILE); production settings refuse to start without it.
"""

import os
import secrets
import threading
from functools import lru_cache

from django.conf import settings

_lock = threading.Lock()


def _load_or_create_key_file(path: str) -> str:
    with _lock:
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            # O_EXCL: when two processes race to create the key, one wins and the other reads it.
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w", encoding="ascii") as handle:
                    handle.write(secrets.token_urlsafe(48) + "\n")
        with open(path, encoding="ascii") as handle:
            key = handle.read().strip()
    if not key:  # a reader that raced the writer saw the file before its content
        raise RuntimeError(f"{path} is empty: remove it or set CONSENT_PSEUDONYM_KEY")
    return key


@lru_cache(maxsize=4)
def _key_for(configured: str, path: str) -> str:
    return configured or _load_or_create_key_file(path)


def pseudonym_key() -> str:
    return _key_for(settings.CONSENT_PSEUDONYM_KEY or "", str(settings.CONSENT_PSEUDONYM_KEY_FILE))
