#!/usr/bin/env python
"""Audit benchmark: N ledger events (and the consent rows they give) on PostgreSQL; export (CSV, JSONL) time
and peak RSS; verification time (chain, state replay, both).

    .venv/bin/python bench/audit.py                      # 1,000,000 events
    .venv/bin/python bench/audit.py --events 100000 --reuse

The events are generated fast: the chain is computed in Python and rows are streamed with COPY
(the append-only triggers allow INSERT). Each measured step runs as its own process, so its peak
RSS is its own. Figures are printed and written to bench/results/audit.json.
Targets: export ≤ 20 s and ≤ 150 MB per format; full verification ≤ 30 s.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
TARGETS = {"export_seconds": 20.0, "export_peak_rss_mb": 150.0, "verify_seconds": 30.0}


def database_exists_with(url: str, events: int) -> bool:
    import psycopg

    try:
        with psycopg.connect(url) as conn:
            head = conn.execute("SELECT seq FROM consent_chainhead WHERE id = 1").fetchone()
            return bool(head) and head[0] == events
    except psycopg.Error:
        return False


def recreate_database(url: str) -> None:
    import psycopg
    from psycopg import sql

    name = url.rsplit("/", 1)[1].split("?")[0]
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def run_child(args: list[str], env: dict) -> dict:
    """Popen + wait4, so each step reports its own peak RSS (not the maximum over all children)."""
    started = time.perf_counter()
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out_chunks, err_chunks = [], []
    # Drain the pipes without reaping the child, then reap it with wait4 for its rusage.
    import selectors

    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ, out_chunks)
    selector.register(process.stderr, selectors.EVENT_READ, err_chunks)
    open_streams = 2
    while open_streams:
        for key, _ in selector.select():
            data = key.fileobj.read1(65536)
            if data:
                key.data.append(data)
            else:
                selector.unregister(key.fileobj)
                open_streams -= 1
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - started
    stdout = b"".join(out_chunks).decode(errors="replace")
    stderr = b"".join(err_chunks).decode(errors="replace")
    result = {"seconds": round(elapsed, 2), "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
              "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
              "exit": process.returncode, "output": (stdout.strip().splitlines() or [""])[-1][:300]}
    if process.returncode != 0:
        result["stderr"] = stderr.strip()[-2000:]
    return result


def measured(label: str, args: list[str], env: dict) -> dict:
    result = run_child(args, env)
    print(f"{label:<30} {result['seconds']:>8.2f} s  ({result['cpu_seconds']:>6.2f} s CPU)  "
          f"{result['peak_rss_mb']:>7.1f} MB peak RSS  exit {result['exit']}", flush=True)
    if result["exit"] not in (0,):
        print(result.get("stderr", ""), file=sys.stderr)
    return result


def generate(events: int, contacts: int) -> dict:
    """Contacts, one topic and `events` chained events, written with COPY. Runs inside this process."""
    import django

    django.setup()
    from django.db import connection, transaction

    from consent import services
    from consent.hashing import (
        GENESIS_HASH,
        chain_hash,
        format_instant,
        phone_pseudonym,
    )
    from consent.pseudonym_key import pseudonym_key

    started = time.perf_counter()
    topic = services.topic_create(slug="bench", name="Benchmark promotions", keywords=["BENCH"],
                                  consent_text="I agree to receive benchmark promotions.",
                                  confirmation_message="Reply YES to confirm, STOP to cancel.",
                                  help_message="Benchmark help. Reply STOP to opt out.", consent_ttl_days=365)
    text = topic.current_text
    key = pseudonym_key()
    subjects = []
    raw = connection.connection  # the psycopg connection under Django's
    with transaction.atomic():
        with connection.cursor() as cursor:
            copy_sql = ("COPY consent_contact (phone, phone_pseudonym, country, timezone, timezones, attributes, "
                        "created_at) FROM STDIN")
            now = datetime.now(UTC)
            with cursor.cursor.copy(copy_sql) as copy:
                for n in range(contacts):
                    phone = f"+1202{n:07d}"
                    pseudonym = phone_pseudonym(phone, key)
                    subjects.append(pseudonym)
                    copy.write_row((phone, pseudonym, "US", "America/New_York", '["America/New_York"]', "{}", now))
            cursor.execute("SELECT id, phone_pseudonym FROM consent_contact")
            ids = {p: i for i, p in cursor.fetchall()}
    contact_ids = [ids[s] for s in subjects]
    print(f"  {contacts} contacts in {time.perf_counter() - started:.1f} s", flush=True)

    kinds = ("requested", "confirmation_sent", "confirmed", "revoked")
    sources = ("web_form", "system", "sms_keyword", "sms_keyword")
    base = datetime(2025, 1, 1, tzinfo=UTC)
    prev = GENESIS_HASH
    columns = ("seq", "uuid", "occurred_at", "recorded_at", "kind", "contact_id", "subject", "topic_id", "topic_slug",
               "channel", "source", "actor", "text_id", "text_version", "text_sha256", "evidence", "prev_hash", "hash")
    started = time.perf_counter()
    with transaction.atomic():
        with connection.cursor() as cursor:
            with cursor.cursor.copy(f"COPY consent_consentevent ({', '.join(columns)}) FROM STDIN") as copy:
                for seq in range(1, events + 1):
                    c = (seq - 1) % contacts
                    step = ((seq - 1) // contacts) % 4
                    at = base + timedelta(seconds=seq * 7, microseconds=seq % 1000000)
                    evidence = ({"ip": f"203.0.113.{seq % 250}", "page_url": "https://shop.example/signup",
                                 "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Benchmark/1.0"} if step == 0 else
                                {"message_id": seq, "provider_message_id": f"SM{seq:032x}", "provider": "twilio"}
                                if step == 1 else {"inbound_text": "YES" if step == 2 else "STOP",
                                                   "provider_message_id": f"SM{seq:032x}"})
                    fields = {"seq": seq, "uuid": str(uuid.uuid4()), "occurred_at": format_instant(at),
                              "recorded_at": format_instant(at), "kind": kinds[step], "subject": subjects[c],
                              "topic": "bench", "channel": "sms", "source": sources[step], "actor": "system",
                              "text_version": text.version, "text_sha256": text.sha256, "evidence": evidence}
                    digest = chain_hash(prev, fields)
                    copy.write_row((seq, fields["uuid"], at, at, kinds[step], contact_ids[c], subjects[c], topic.pk,
                                    "bench", "sms", sources[step], "system", text.pk, text.version, text.sha256,
                                    json.dumps(evidence), prev, digest))
                    prev = digest
                    if seq % 200000 == 0:
                        print(f"  {seq} events ({time.perf_counter() - started:.1f} s)", flush=True)
            cursor.execute("UPDATE consent_chainhead SET seq = %s, hash = %s WHERE id = 1", [events, prev])
            write_consents(cursor, events=events, contact_ids=contact_ids, topic=topic, text=text, base=base)
            write_deliveries(cursor, events=events, contact_ids=contact_ids, topic=topic, base=base)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE consent_consentevent")
        cursor.execute("ANALYZE consent_contact")
    seconds = time.perf_counter() - started
    print(f"  {events} events in {seconds:.1f} s", flush=True)
    del raw
    return {"events_seconds": round(seconds, 1), "contacts": contacts}


def write_consents(cursor, *, events: int, contact_ids: list, topic, text, base) -> None:
    """The consent rows that replaying the generated events gives (verification compares the two)."""
    state = {}
    for seq in range(1, events + 1):
        c = (seq - 1) % len(contact_ids)
        step = ((seq - 1) // len(contact_ids)) % 4
        at = base + timedelta(seconds=seq * 7, microseconds=seq % 1000000)
        if step == 0:
            state[c] = ["pending", "web_form", at, at + timedelta(hours=48), None, None, None]
        elif step == 2:
            state[c][:2], state[c][4], state[c][5] = ["active", "sms_keyword"], at, at + timedelta(days=365)
        elif step == 3:
            state[c][:2], state[c][6] = ["revoked", "sms_keyword"], at
    columns = ("contact_id", "topic_id", "channel", "status", "text_id", "source", "requested_at", "confirm_by",
               "confirmed_at", "expires_at", "revoked_at", "updated_at")
    now = datetime.now(UTC)
    with cursor.cursor.copy(f"COPY consent_consent ({', '.join(columns)}) FROM STDIN") as copy:
        for c, (status, source, requested, confirm_by, confirmed, expires, revoked) in sorted(state.items()):
            copy.write_row((contact_ids[c], topic.pk, "sms", status, text.pk, source, requested, confirm_by, confirmed,
                            expires, revoked, now))


DELIVERIES_PER_CONFIRMATION = 5


def write_deliveries(cursor, *, events: int, contact_ids: list, topic, base) -> None:
    """Broadcast deliveries handed over while each generated confirmation was current: five broadcasts per
    confirmation phase, each recipient's row pointing at its confirmation (the delivery check reads them all).
    Skipped where the schema has no delivery authorisation yet (a checkout from before it)."""
    cursor.execute("SELECT 1 FROM information_schema.columns WHERE table_name = 'broadcasts_delivery' "
                   "AND column_name = 'rule'")
    if cursor.fetchone() is None:
        return
    contacts = len(contact_ids)
    now = datetime.now(UTC)
    columns = ("broadcast_id", "contact_id", "status", "attempts", "error_code", "error_message", "skip_reason",
               "created_at", "authorized_by", "claimed_at", "sent_at", "status_at", "retryable")
    phases = [p for p in range(events // contacts) if p % 4 == 2 and (p + 1) * contacts <= events]
    for phase in phases:
        for k in range(1, DELIVERIES_PER_CONFIRMATION + 1):
            cursor.execute(
                "INSERT INTO broadcasts_broadcast (name, topic_id, channel, body, respect_quiet_hours, status, "
                "status_reason, created_by, created_at, updated_at, fanout_cursor, fanout_done, resumes) VALUES "
                "(%s, %s, 'sms', 'Sale! STOP to opt out.', false, 'completed', '', 'bench', %s, %s, 0, true, 0) "
                "RETURNING id", [f"bench {phase}-{k}", topic.pk, now, now])
            broadcast_id = cursor.fetchone()[0]
            with cursor.cursor.copy(f"COPY broadcasts_delivery ({', '.join(columns)}) FROM STDIN") as copy:
                for c in range(contacts):
                    seq = phase * contacts + c + 1  # this contact's confirmation in this phase
                    confirmed = base + timedelta(seconds=seq * 7, microseconds=seq % 1000000)
                    claimed = confirmed + timedelta(seconds=k * 1000)  # before the revocation, 700,000 s later
                    copy.write_row((broadcast_id, contact_ids[c], "delivered", 1, "", "", "", claimed, seq, claimed,
                                    claimed, claimed, False))
    cursor.execute("ANALYZE broadcasts_delivery")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=int(os.environ.get("BENCH_EVENTS", "1000000")))
    parser.add_argument("--contacts", type=int, default=int(os.environ.get("BENCH_CONTACTS", "100000")))
    parser.add_argument("--database-url", default=os.environ.get(
        "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/consent_bench_audit"))
    parser.add_argument("--reuse", action="store_true", help="Keep the database if it already holds --events events.")
    parser.add_argument("--workdir", default=str(ROOT / "bench" / "results" / "audit-files"))
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "audit.json"))
    parser.add_argument("--keep-files", action="store_true", help="Keep the exported files (about 1.3 GB at 1M events).")
    args = parser.parse_args()

    env = {**os.environ, "DATABASE_URL": args.database_url, "DJANGO_SETTINGS_MODULE": "config.settings.local",
           "DJANGO_DEBUG": "false", "LOG_LEVEL": "WARNING"}
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    results = {"events": args.events, "database": "postgresql", "python": platform.python_version(),
               "machine": f"{platform.machine()} {os.cpu_count()} CPUs", "targets": TARGETS,
               "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
               "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}

    if not (args.reuse and database_exists_with(args.database_url, args.events)):
        print(f"Generating {args.events} events on {args.database_url.rsplit('@', 1)[-1]} …", flush=True)
        recreate_database(args.database_url)
        subprocess.run([PYTHON, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        gen = run_child([PYTHON, __file__, "--_generate", str(args.events), str(args.contacts)], env)
        if gen["exit"] != 0:
            print(gen.get("stderr"), file=sys.stderr)
            return 1
        results["generation"] = {"seconds": gen["seconds"], "contacts": args.contacts}
        print(f"{'generation':<30} {gen['seconds']:>8.2f} s", flush=True)
    else:
        print("Reusing the existing benchmark database.", flush=True)
        clear = "from consent.models import LedgerCheckpoint as C; C.objects.all().delete()"
        subprocess.run([PYTHON, "manage.py", "shell", "-c", clear], cwd=ROOT, env=env, check=True)

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    # A fresh write-once checkpoint directory per run: the database is new (or its checkpoints cleared).
    sink = workdir / "checkpoints"
    if sink.exists():
        for path in sink.iterdir():
            path.unlink()
    sink.mkdir(mode=0o700, exist_ok=True)
    env["AUDIT_CHECKPOINT_SINK"] = str(sink)
    manage = [PYTHON, "manage.py"]
    results["verify_full"] = measured("verify (chain and state)", manage + ["verify_consent_log"], env)
    results["verify_chain"] = measured("verify (chain only)", manage + [
        "shell", "-c", "from consent.verification import verify_ledger; r = verify_ledger(); print(r.summary()); "
        "raise SystemExit(0 if r.ok else 1)"], env)
    results["verify_state"] = measured("verify (state replay only)", manage + [
        "shell", "-c", "from consent.verification import verify_state; r = verify_state(); print(r.summary()); "
        "raise SystemExit(0 if r.ok else 1)"], env)
    results["verify_deliveries"] = measured("verify (deliveries only)", manage + [
        "shell", "-c", "from consent.audit.registry import promotional_messages_verify as v; r = v(); "
        "print(r.summary()); raise SystemExit(0 if r.ok else 1)"], env)
    results["checkpoint"] = measured("checkpoint (verify + sign)", manage + [
        "shell", "-c", "from consent.audit.checkpoints import checkpoint_create; print(checkpoint_create().seq)"], env)
    results["verify_resume"] = measured("verify --resume", manage + ["verify_consent_log", "--resume"], env)
    for fmt in ("csv", "jsonl"):
        path = workdir / f"ledger.{fmt}"
        step = measured(f"export {fmt}", manage + ["export_consent_log", "--format", fmt, "--output", str(path)], env)
        step["bytes"] = path.stat().st_size if path.exists() else None
        results[f"export_{fmt}"] = step
    results["verify_export_offline_csv"] = measured(
        "offline verify (csv)", [PYTHON, "tools/verify_export.py", str(workdir / "ledger.csv")], env)

    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    if not args.keep_files:
        for path in workdir.glob("ledger.*"):
            path.unlink()
    exports = [results["export_csv"], results["export_jsonl"]]
    results["meets_targets"] = {
        "export_seconds": all(e["seconds"] <= TARGETS["export_seconds"] for e in exports),
        "export_peak_rss_mb": all(e["peak_rss_mb"] <= TARGETS["export_peak_rss_mb"] for e in exports),
        "verify_seconds": results["verify_full"]["seconds"] <= TARGETS["verify_seconds"],
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results["meets_targets"]), f"→ {args.output}")
    ok = all(step.get("exit") == 0 for step in results.values() if isinstance(step, dict) and "exit" in step)
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--_generate":
        sys.path.insert(0, str(ROOT))
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
        generate(int(sys.argv[2]), int(sys.argv[3]))
        sys.exit(0)
    sys.exit(main())
