"""Each entry point chooses its settings: `gunicorn config.wsgi` and `celery -A config` run the
production settings unless DJANGO_SETTINGS_MODULE says otherwise; `manage.py` the development ones.

Each case imports the entry point in a fresh interpreter with no DJANGO_SETTINGS_MODULE, as
gunicorn, the worker and beat do.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.security.test_production_settings import _SCRUB, GOOD_ENV

ROOT = Path(__file__).resolve().parents[2]
SECRETS = ("DJANGO_SECRET_KEY", "CONSENT_PSEUDONYM_KEY", "AUDIT_SIGNING_KEY", "PUBLIC_BASE_URL")
REPORT = ("from django.conf import settings; import json;"
          "print(json.dumps({'module': settings.SETTINGS_MODULE, 'debug': settings.DEBUG}))")
ENTRY_POINTS = {
    "wsgi": "import config.wsgi;" + REPORT,
    # What `celery -A config worker|beat` does first: import the package's app, then read its configuration.
    "celery": "from config import celery_app; celery_app.conf.broker_url;" + REPORT,
}


def _run(code, tmp_path, extra=None, argv=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith((*_SCRUB, "CONSENT_", "DATA_DIR"))}
    env.update(PYTHONPATH=str(ROOT), DATA_DIR=str(tmp_path), DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
               **(extra or {}))
    return subprocess.run(argv or [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_entry_point_without_settings_module_is_production_and_refuses_without_its_secrets(entry, tmp_path):
    result = _run(ENTRY_POINTS[entry], tmp_path)
    assert result.returncode != 0, f"{entry} started without secrets: {result.stdout}"
    assert "ImproperlyConfigured" in result.stderr
    for name in SECRETS:
        assert name in result.stderr, result.stderr[-800:]


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_entry_point_with_its_secrets_runs_production(entry, tmp_path):
    result = _run(ENTRY_POINTS[entry], tmp_path, GOOD_ENV)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"module": "config.settings.production", "debug": False}


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_entry_point_follows_an_explicit_settings_module(entry, tmp_path):
    result = _run(ENTRY_POINTS[entry], tmp_path, {"DJANGO_SETTINGS_MODULE": "config.settings.local"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"module": "config.settings.local", "debug": True}


def test_manage_py_is_development(tmp_path):
    result = _run("", tmp_path, argv=[sys.executable, "manage.py", "shell", "-c", REPORT])
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"module": "config.settings.local", "debug": True}


def test_procfile_dev_names_the_development_settings_for_every_process():
    lines = [line for line in (ROOT / "Procfile.dev").read_text().splitlines() if line.strip()]
    assert {line.split(":", 1)[0] for line in lines} == {"web", "worker", "beat"}
    for line in lines:
        assert "DJANGO_SETTINGS_MODULE=config.settings.local" in line, line
