"""Exports: documented columns, spreadsheet-safe CSV, signed manifests, and verification without the database."""

import csv
import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from consent.audit.export import COLUMNS, neutralise_cell
from consent.audit.signing import public_key_pem
from consent.models import ConsentEvent, LedgerCheckpoint
from consent.verification import verify_ledger

from .conftest import raw_sql, triggers_lifted

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[3]
TOOL = ROOT / "tools" / "verify_export.py"


def load_tool():
    from consent.management.commands.verify_export import load_offline_verifier

    return load_offline_verifier()


def export(tmp_path, fmt, *extra):
    path = tmp_path / f"ledger.{fmt}"
    out = io.StringIO()
    call_command("export_consent_log", "--format", fmt, "--output", str(path), *extra, stdout=out)
    return path, json.loads(Path(f"{path}.manifest.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_export_and_manifest(ledger, tmp_path, fmt):
    path, manifest = export(tmp_path, fmt)
    total = ConsentEvent.objects.count()
    assert manifest["count"] == total and manifest["first_seq"] == 1 and manifest["last_seq"] == total
    assert manifest["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert manifest["chain_head"]["seq"] == total
    assert manifest["checkpoint"]["seq"] == total and manifest["checkpoint"]["hash"] == manifest["chain_head"]["hash"]
    assert LedgerCheckpoint.objects.filter(seq=total).exists()
    assert manifest["columns"] == list(COLUMNS)
    assert manifest["texts"][0]["sha256"] == ledger.current_text.sha256
    result = load_tool().verify_export(str(path), None, public_key_pem())
    assert result.ok, result.problems
    assert result.count == total


def test_csv_is_spreadsheet_safe_and_reversible(ledger, tmp_path):
    path, _ = export(tmp_path, "csv")
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0] == list(COLUMNS)
    body = raw.decode("utf-8-sig").splitlines()[1]
    assert body.startswith('"') and '","' in body  # every cell quoted
    for row in rows[1:]:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@")), cell
    actors = {row[COLUMNS.index("actor")] for row in rows[1:]}
    assert "'-minus-actor" in actors
    phones = {row[COLUMNS.index("phone")] for row in rows[1:]}
    assert "'+14155550123" in phones  # E.164 starts with +: neutralised too
    assert neutralise_cell("'quoted") == "''quoted"
    assert load_tool().unneutralise(neutralise_cell("'quoted")) == "'quoted"


def test_jsonl_lines_are_records(ledger, tmp_path):
    path, _ = export(tmp_path, "jsonl")
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert list(records[0]) == list(COLUMNS)
    assert records[0]["evidence"]["user_agent"] == '=HYPERLINK("x")'
    assert records[0]["occurred_at"].endswith("Z")


def test_filtered_export_verifies(ledger, tmp_path):
    path, manifest = export(tmp_path, "csv", "--topic", "promo", "--channel", "sms", "--since", "2000-01-01")
    assert manifest["filters"]["topic"] == "promo" and manifest["filters"]["since"] == "2000-01-01T00:00:00.000000Z"
    assert load_tool().verify_export(str(path), None, public_key_pem()).ok
    path, manifest = export(tmp_path, "jsonl", "--until", "2000-01-01")
    assert manifest["count"] == 0 and load_tool().verify_export(str(path), None, public_key_pem()).ok


@pytest.mark.parametrize("args", [["--since", "yesterday"], ["--channel", "fax"], ["--topic", "nope"],
                                  ["--since", "2026-02-01", "--until", "2026-01-01"]])
def test_bad_filters_are_refused(ledger, tmp_path, args):
    with pytest.raises(CommandError):
        export(tmp_path, "csv", *args)


def test_changed_file_is_caught(ledger, tmp_path):
    path, _ = export(tmp_path, "jsonl")
    lines = path.read_text(encoding="utf-8").splitlines()
    record = json.loads(lines[2])
    record["channel"] = "whatsapp"
    lines[2] = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = load_tool().verify_export(str(path), None, public_key_pem())
    assert not result.ok
    assert any("SHA-256" in p for p in result.problems)
    assert any("sequence 3: hash" in p for p in result.problems)


def test_file_and_manifest_changed_together_is_caught(ledger, tmp_path):
    path, manifest = export(tmp_path, "csv")
    text = path.read_text(encoding="utf-8-sig").replace("203.0.113.9", "198.51.100.7")
    path.write_text("\ufeff" + text, encoding="utf-8")
    manifest["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    manifest["bytes"] = path.stat().st_size
    Path(f"{path}.manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    result = load_tool().verify_export(str(path), None, public_key_pem())
    assert "the manifest's signature does not verify with this public key" in result.problems


def test_a_different_key_is_refused(ledger, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path, _ = export(tmp_path, "csv")
    other = Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    result = load_tool().verify_export(str(path), None, other)
    assert not result.ok and any("signature" in p for p in result.problems)


def test_standalone_script_needs_no_django(ledger, tmp_path):
    path, _ = export(tmp_path, "csv")
    key = tmp_path / "key.pem"
    key.write_text(public_key_pem(), encoding="ascii")
    source = TOOL.read_text(encoding="utf-8")
    assert "django" not in source.lower().replace("without the database", "")
    ok = subprocess.run([sys.executable, "-I", str(TOOL), str(path), "--public-key", str(key)], capture_output=True,
                        text=True, cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "OK:" in ok.stdout
    path.write_bytes(path.read_bytes().replace(b"sms", b"SMS", 1))
    bad = subprocess.run([sys.executable, "-I", str(TOOL), str(path), "--public-key", str(key)], capture_output=True,
                         text=True, cwd=tmp_path)
    assert bad.returncode == 1 and "FAIL" in bad.stdout


def test_verify_export_command(ledger, tmp_path):
    path, _ = export(tmp_path, "jsonl")
    out = io.StringIO()
    call_command("verify_export", str(path), stdout=out, stderr=io.StringIO())
    assert "OK:" in out.getvalue()
    path.write_text(path.read_text(encoding="utf-8").replace("promo", "PROMO", 1), encoding="utf-8")
    with pytest.raises(SystemExit) as exc:
        call_command("verify_export", str(path), stdout=io.StringIO(), stderr=io.StringIO())
    assert exc.value.code == 1


def test_export_of_a_broken_ledger_is_written_without_checkpoint(ledger, tmp_path):
    with triggers_lifted():
        raw_sql("UPDATE consent_consentevent SET kind = 'confirmed' WHERE seq = 1")
    with pytest.raises(CommandError, match="does not verify"):
        export(tmp_path, "csv")
    manifest = json.loads((tmp_path / "ledger.csv.manifest.json").read_text(encoding="utf-8"))
    assert manifest["checkpoint"] is None and manifest["ledger_verification"]["first_bad_seq"] == 1
    result = load_tool().verify_export(str(tmp_path / "ledger.csv"), None, public_key_pem())
    assert any("sequence 1: hash" in p for p in result.problems)
    assert not verify_ledger().ok


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_awkward_evidence_survives_the_round_trip(ledger, tmp_path, fmt, run_on_commit):
    from consent import services
    from consent.selectors import contact_get_by_phone

    evidence = {"inbound_text": 'ARRÊT, "now"\nplease; =1+1', "nested": {"b": [1, 2.5, None, True], "a": "ünï"},
                "page_url": "https://example.test/a?b=1&c=2", "empty_list": []}
    with run_on_commit():
        services.consent_revoke(contact=contact_get_by_phone("+33612345678"), channel="sms", source="sms_keyword",
                                evidence=evidence, actor="@admin")
    assert verify_ledger().ok
    path, manifest = export(tmp_path, fmt)
    assert manifest["count"] == ConsentEvent.objects.count()
    result = load_tool().verify_export(str(path), None, public_key_pem())
    assert result.ok, result.problems


def test_export_of_an_empty_ledger(db, tmp_path):
    path, manifest = export(tmp_path, "jsonl")
    assert manifest["count"] == 0 and manifest["chain_head"] == {"seq": 0, "hash": "0" * 64}
    assert manifest["checkpoint"] is None and path.read_bytes() == b""
    result = load_tool().verify_export(str(path), None, public_key_pem())
    assert result.ok, result.problems
