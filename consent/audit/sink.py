"""Signed checkpoints kept outside the database, write-once, so a database writer cannot rewrite them.

AUDIT_CHECKPOINT_SINK names the store: a directory (a path or file:// URL; the default is
`checkpoints/` under the data folder). In production the store should be one the application
cannot delete from either, such as an S3 bucket with Object Lock in compliance mode: write a
CheckpointSink for it and name it in SINK_SCHEMES.
"""

import json
import os
import re
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class CheckpointSinkError(Exception):
    """The sink cannot be read or written: verification fails rather than skipping the comparison."""


class CheckpointSink:
    """A write-once store of signed checkpoint records (JSON-ready dicts with seq, hash, signed_at, signature)."""

    description = "checkpoint sink"

    def write(self, record: dict) -> str:
        """Store `record` once; return where. Never overwrites a stored record."""
        raise NotImplementedError

    def latest(self) -> dict | None:
        """The stored record with the highest sequence number (then the latest time), or None if empty."""
        raise NotImplementedError


_NAME = re.compile(r"^(\d{20})-(\d{8}T\d{12}Z)\.json$")


class DirectorySink(CheckpointSink):
    """One file per checkpoint, named by sequence and time, created with O_EXCL and never rewritten."""

    def __init__(self, path):
        self.path = Path(path)
        self.description = f"checkpoint directory {self.path}"

    @staticmethod
    def file_name(record: dict) -> str:
        stamp = re.sub(r"[^0-9TZ]", "", record["signed_at"])  # 2026-01-02T03:04:05.123456Z -> 20260102T030405123456Z
        return f"{int(record['seq']):020d}-{stamp}.json"

    def write(self, record: dict) -> str:
        data = json.dumps(record, sort_keys=True, indent=2).encode("utf-8") + b"\n"
        target = self.path / self.file_name(record)
        try:
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
        except FileExistsError:
            if target.read_bytes() != data:
                raise CheckpointSinkError(f"{target} already holds a different checkpoint") from None
            return str(target)
        except OSError as exc:
            raise CheckpointSinkError(f"cannot write to the {self.description}: {exc}") from None
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        return str(target)

    def latest(self) -> dict | None:
        try:
            names = [name for name in os.listdir(self.path) if _NAME.match(name)]
        except OSError as exc:
            raise CheckpointSinkError(f"cannot read the {self.description}: {exc}") from None
        if not names:
            return None
        name = max(names)  # zero-padded sequence, then time: the lexical maximum is the latest
        try:
            record = json.loads((self.path / name).read_text(encoding="utf-8"))
            record["hash"], record["signature"]  # noqa: B018 (required keys)
            renamed = self.file_name(record) != name
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointSinkError(f"cannot read {self.path / name}: {exc!r}") from None
        if renamed:  # the name decides which file is the latest, so it must be the record's own
            raise CheckpointSinkError(f"{self.path / name} holds a checkpoint its name does not describe")
        record["location"] = str(self.path / name)
        return record


SINK_SCHEMES = {"file": DirectorySink}


def checkpoint_sink() -> CheckpointSink:
    """The configured sink (AUDIT_CHECKPOINT_SINK: a directory path, or scheme://location)."""
    configured = str(getattr(settings, "AUDIT_CHECKPOINT_SINK", "") or "").strip()
    if not configured:
        raise ImproperlyConfigured("AUDIT_CHECKPOINT_SINK is empty: name a directory or a write-once object store.")
    scheme, sep, location = configured.partition("://")
    if not sep:
        return DirectorySink(configured)
    if scheme not in SINK_SCHEMES:
        raise ImproperlyConfigured(
            f"AUDIT_CHECKPOINT_SINK: no sink for {scheme}:// in this build (known: {', '.join(SINK_SCHEMES)}); "
            "an object store needs a CheckpointSink implementation registered in consent.audit.sink.SINK_SCHEMES.")
    return SINK_SCHEMES[scheme](location)
