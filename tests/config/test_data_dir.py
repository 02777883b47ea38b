"""The data folder (SQLite database, signing keys, queued tasks) is readable by the service's user only."""

import os
import stat
import subprocess
import sys
from pathlib import Path

from config.datadir import private_dir, private_file

ROOT = Path(__file__).resolve().parents[2]


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def start_with_data_dir(data_dir, **env):
    """Load the settings in a fresh process, as any command or server does at start."""
    environ = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    environ.update(DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="config.settings.local", **env)
    subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=environ, check=True,
                   timeout=60)


def test_a_fresh_data_folder_and_database_are_private(tmp_path):
    data = tmp_path / "data"
    old_umask = os.umask(0o022)
    try:
        start_with_data_dir(data)
    finally:
        os.umask(old_umask)
    assert mode(data) == 0o700
    assert mode(data / "consent.sqlite3") == 0o600
    assert mode(data / "broker") == 0o700


def test_a_data_folder_left_open_by_an_older_version_is_tightened_at_start(tmp_path):
    data = tmp_path / "data"
    (data / "broker").mkdir(parents=True)
    for name in ("consent.sqlite3", "consent.sqlite3-wal", "consent.sqlite3-shm", "audit-signing-key.pem",
                 "celerybeat-schedule"):
        (data / name).write_text("x")
        os.chmod(data / name, 0o644)
    os.chmod(data / "broker", 0o755)
    os.chmod(data, 0o755)
    start_with_data_dir(data)
    assert mode(data) == 0o700 and mode(data / "broker") == 0o700
    for name in ("consent.sqlite3", "consent.sqlite3-wal", "consent.sqlite3-shm", "audit-signing-key.pem",
                 "celerybeat-schedule"):
        assert mode(data / name) == 0o600, name


def test_a_sqlite_database_elsewhere_is_made_0600_too(tmp_path):
    db = tmp_path / "elsewhere.sqlite3"
    db.write_text("")
    os.chmod(db, 0o666)
    private_file(db)
    assert mode(db) == 0o600
    private_file(tmp_path / "no-such-folder" / "db.sqlite3")  # nothing to do, no error
    assert not (tmp_path / "no-such-folder").exists()


def test_owner_bits_are_kept_and_shared_folders_left_alone(tmp_path):
    script = tmp_path / "data" / "run.sh"
    script.parent.mkdir()
    script.write_text("")
    os.chmod(script, 0o755)
    private_dir(script.parent)
    assert mode(script) == 0o700
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # like /tmp
    private_dir(shared)
    assert mode(shared) == 0o1777
