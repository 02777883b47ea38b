"""Settings read the environment through django-environ; an empty variable still means "unset, use the default"."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.settings.base import env

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("read,default", [
    (lambda: env.str("EDGE_PROBE", "fallback"), "fallback"),
    (lambda: env.str("EDGE_PROBE", None), None),
    (lambda: env.int("EDGE_PROBE", 7), 7),
    (lambda: env.float("EDGE_PROBE", 2.5), 2.5),
    (lambda: env.bool("EDGE_PROBE", True), True),
    (lambda: env.list("EDGE_PROBE", cast=str.strip, default=["a"]), ["a"]),
], ids=["str", "str-none", "int", "float", "bool", "list"])
@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
def test_unset_or_empty_variable_gives_the_default(monkeypatch, read, default, value):
    if value is None:
        monkeypatch.delenv("EDGE_PROBE", raising=False)
    else:
        monkeypatch.setenv("EDGE_PROBE", value)
    assert read() == default


@pytest.mark.parametrize("value,expected", [("0", False), ("1", True), ("true", True), ("Yes", True),
                                            ("on", True), ("false", False), ("off", False)])
def test_bool_values(monkeypatch, value, expected):
    monkeypatch.setenv("EDGE_PROBE", value)
    assert env.bool("EDGE_PROBE", not expected) is expected


def test_list_items_are_stripped(monkeypatch):
    monkeypatch.setenv("EDGE_PROBE", " a.example ,b.example")
    assert env.list("EDGE_PROBE", cast=str.strip, default=[]) == ["a.example", "b.example"]


def test_empty_variables_leave_the_settings_at_their_defaults(tmp_path):
    environ = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL")}
    empty = ("DJANGO_DEBUG", "DJANGO_ALLOWED_HOSTS", "API_MAX_PAGE_SIZE", "BROADCAST_TICK_SECONDS", "REDIS_URL",
             "DATABASE_URL", "CELERY_BROKER_URL", "DEFAULT_PHONE_REGION", "TRUSTED_PROXIES")
    environ.update({name: "" for name in empty}, DATA_DIR=str(tmp_path), PYTHONPATH=str(ROOT),
                   DJANGO_SETTINGS_MODULE="config.settings.local")
    code = ("import json; from django.conf import settings as s; print(json.dumps([s.DEBUG, s.ALLOWED_HOSTS, "
            "s.API_MAX_PAGE_SIZE, s.CELERY_BEAT_SCHEDULE['broadcasts-tick']['schedule'], s.REDIS_URL, "
            "s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL, s.DEFAULT_PHONE_REGION, s.TRUSTED_PROXIES]))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environ, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [True, ["localhost", "127.0.0.1", "[::1]", "testserver"], 1000, 5.0, None,
                                         "django.db.backends.sqlite3", "filesystem://localhost/", None, []]


def test_an_escaped_dollar_is_a_literal_dollar(monkeypatch):
    """A secret may start with "$" (Django's own generator uses it): written "\\$", it is read as written."""
    monkeypatch.setenv("EDGE_PROBE", r"\$ecret-with-$-inside")
    assert env.str("EDGE_PROBE", "") == "$ecret-with-$-inside"


@pytest.mark.parametrize("gather", ["-1", "5", "9.5"])
def test_an_apply_gather_not_shorter_than_the_trigger_key_is_refused(tmp_path, gather):
    """Gathering as long as the trigger key lives would let the key expire first: a second task queued meanwhile."""
    environ = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL")}
    environ.update(DATA_DIR=str(tmp_path), PYTHONPATH=str(ROOT), DJANGO_SETTINGS_MODULE="config.settings.local",
                   INBOUND_APPLY_GATHER_SECONDS=gather, INBOUND_APPLY_TRIGGER_SECONDS="5")
    code = "from django.conf import settings as s; print(s.INBOUND_APPLY_GATHER_SECONDS)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environ, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0
    assert "INBOUND_APPLY_GATHER_SECONDS must be at least 0 and less than INBOUND_APPLY_TRIGGER_SECONDS (5)" in result.stderr
