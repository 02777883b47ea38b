"""Signed checkpoints are also written, once, outside the database, and verification reads the latest."""

import json
import os
import stat

import pytest
from django.core.exceptions import ImproperlyConfigured

from consent.audit.checkpoints import checkpoint_create
from consent.audit.sink import CheckpointSinkError, DirectorySink, checkpoint_sink
from consent.verification import verify_ledger


def test_each_checkpoint_is_a_file_named_by_seq_and_time_written_once(ledger, checkpoint_sink_dir):
    checkpoint = checkpoint_create()
    files = sorted(os.listdir(checkpoint_sink_dir))
    assert len(files) == 1 and files[0].startswith(f"{checkpoint.seq:020d}-") and files[0].endswith("Z.json")
    path = checkpoint_sink_dir / files[0]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o400
    record = json.loads(path.read_text())
    assert (record["seq"], record["hash"], record["signature"]) == (checkpoint.seq, checkpoint.hash,
                                                                    checkpoint.signature)
    assert checkpoint_create().pk == checkpoint.pk  # the same head: reused, and its file is left as it is
    assert sorted(os.listdir(checkpoint_sink_dir)) == files


def test_a_stored_checkpoint_is_never_overwritten(tmp_path):
    sink = DirectorySink(tmp_path / "cp")
    record = {"type": "consent-ledger-checkpoint", "seq": 3, "hash": "a" * 64,
              "signed_at": "2026-01-02T03:04:05.000006Z", "signature": "sig"}
    where = sink.write(record)
    assert stat.S_IMODE(os.stat(tmp_path / "cp").st_mode) == 0o700
    assert sink.write(record) == where  # the same record again changes nothing
    with pytest.raises(CheckpointSinkError, match="different checkpoint"):
        sink.write({**record, "hash": "b" * 64})
    assert json.loads(open(where).read())["hash"] == "a" * 64


def test_the_latest_is_the_highest_seq_then_the_latest_time(tmp_path):
    sink = DirectorySink(tmp_path)
    base = {"type": "consent-ledger-checkpoint", "hash": "a" * 64, "signature": "s"}
    for seq, at in ((9, "2026-01-01T00:00:00.000000Z"), (10, "2026-01-01T00:00:00.000000Z"),
                    (10, "2026-01-02T00:00:00.000000Z"), (2, "2027-01-01T00:00:00.000000Z")):
        sink.write({**base, "seq": seq, "signed_at": at})
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    latest = sink.latest()
    assert (latest["seq"], latest["signed_at"]) == (10, "2026-01-02T00:00:00.000000Z")


@pytest.mark.parametrize("breakage", ["missing", "not a directory", "unreadable file"])
def test_a_sink_that_cannot_be_read_fails_verification_loudly(ledger, settings, tmp_path, breakage):
    checkpoint_create()
    if breakage == "missing":
        settings.AUDIT_CHECKPOINT_SINK = str(tmp_path / "nowhere")
    elif breakage == "not a directory":
        (tmp_path / "file").write_text("x")
        settings.AUDIT_CHECKPOINT_SINK = str(tmp_path / "file")
    else:
        directory = tmp_path / "broken"
        directory.mkdir()
        (directory / f"{99:020d}-20260101T000000000000Z.json").write_text("{not json")
        settings.AUDIT_CHECKPOINT_SINK = str(directory)
    report = verify_ledger()
    assert not report.ok and report.first_bad_seq is None and "checkpoint sink" in report.problem
    assert "NOT verified" in report.summary()


def test_a_forged_checkpoint_in_the_sink_fails_verification(ledger, checkpoint_sink_dir):
    checkpoint = checkpoint_create()
    record = json.loads(next(checkpoint_sink_dir.iterdir()).read_text())
    DirectorySink(checkpoint_sink_dir).write({**record, "seq": checkpoint.seq + 5,
                                              "signed_at": "2099-01-01T00:00:00.000000Z"})
    report = verify_ledger()
    assert not report.ok and "no valid signature" in report.problem


def test_a_checkpoint_under_another_name_fails_verification(ledger, checkpoint_sink_dir):
    checkpoint_create()
    path = next(checkpoint_sink_dir.iterdir())
    path.rename(checkpoint_sink_dir / f"{10**9:020d}-20990101T000000000000Z.json")  # would sort last
    report = verify_ledger()
    assert not report.ok and "its name does not describe" in report.problem


def test_sink_setting(settings, tmp_path):
    settings.AUDIT_CHECKPOINT_SINK = f"file://{tmp_path}"
    assert checkpoint_sink().path == tmp_path
    settings.AUDIT_CHECKPOINT_SINK = "s3://bucket/checkpoints"
    with pytest.raises(ImproperlyConfigured, match="s3://"):
        checkpoint_sink()
    settings.AUDIT_CHECKPOINT_SINK = ""
    with pytest.raises(ImproperlyConfigured):
        checkpoint_sink()


def test_the_default_sink_is_checkpoints_under_the_data_folder():
    from config.settings import base

    assert base.AUDIT_CHECKPOINT_SINK == str(base.DATA_DIR / "checkpoints") or os.environ.get("AUDIT_CHECKPOINT_SINK")
    assert stat.S_IMODE(os.stat(base.DATA_DIR / "checkpoints").st_mode) == 0o700
