"""The data folder holds the SQLite database, signing keys and queued tasks: only the service's user may read it.

Folders are made 0700 and files 0600, also when an older version left them readable by others:
what is there is tightened at every start.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path

PRIVATE = 0o077  # group and other permission bits


def _tighten(path: Path) -> None:
    try:
        status = path.lstat()
        if status.st_uid == os.geteuid() and status.st_mode & PRIVATE and not stat.S_ISLNK(status.st_mode):
            os.chmod(path, stat.S_IMODE(status.st_mode) & ~PRIVATE)
    except OSError:  # vanished meanwhile, or not ours: leave it
        pass


def private_dir(path: Path) -> Path:
    """`path` created 0700, or with group and other permissions taken from it and the entries it holds."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & stat.S_ISVTX:  # a shared folder such as /tmp is not ours to close
        return path
    _tighten(path)
    for entry in os.scandir(path):
        _tighten(Path(entry.path))
    return path


def private_file(path: str | Path) -> None:
    """Create `path` empty and 0600 if missing, else tighten it; SQLite gives its -wal and -shm files the same mode."""
    path = Path(path)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    except OSError:  # its folder is missing or read-only: the database will say so itself
        return
    for sibling in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        if sibling.exists():
            _tighten(sibling)


_secret_lock = threading.Lock()


def development_secret(path: str | Path, make: Callable[[], bytes]) -> bytes:
    """The secret in `path`, written once with make() (0600) when it does not exist yet: development defaults.

    O_EXCL: when two processes race to create it, one writes and the other reads what it wrote.
    """
    path = Path(path)
    with _secret_lock:
        if not path.exists():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(make())
        secret = path.read_bytes()
    if not secret.strip():  # a reader that raced the writer saw the file before its content
        raise RuntimeError(f"{path} is empty: remove it, or set the setting it stands in for")
    return secret
