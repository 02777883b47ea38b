#!/usr/bin/env python
"""Loopback load: inbound webhooks mixed with API reads while a 100,000-contact broadcast runs.

    .venv/bin/python bench/load.py                 # 100,000 contacts, stops after ≤ 240 s of load
    .venv/bin/python bench/load.py --smoke         # 10,000 contacts, ≤ 45 s of load
    .venv/bin/python bench/load.py --contacts 50000 --max-seconds 120 --concurrency 24

Everything runs on this machine, over loopback, on PostgreSQL + Redis (DATABASE_URL default
postgres://postgres@127.0.0.1:5432/helper_reliability_load, recreated; CELERY_BROKER_URL default
redis://127.0.0.1:6379/7 on a queue of its own; REDIS_URL default redis://127.0.0.1:6379/8):

1. Seeds N contacts with a current SMS consent (SQL, seconds) and an admin API token.
2. Starts the provider stand-in (tests/stand_in.py, 20 ms latency), gunicorn (gthread) and Celery
   worker processes, then schedules a broadcast to all N.
3. While it sends, one asyncio client mix posts signed Twilio inbound webhooks (STOP, YES, HELP,
   free text; 5 % redelivered) and reads the API (contact detail, consent list, broadcast detail,
   topics) with the admin token.
4. Stops by itself when the broadcast completes or --max-seconds pass (whichever is first), stops
   every process it started, and checks that nothing was lost or doubled: each webhook id stored
   once, each STOP applied (consent revoked) and nobody messaged after their STOP was recorded,
   nobody messaged twice.

Prints and writes bench/results/load.json: requests/s and error rate per kind (errors are 5xx and
transport failures; 4xx are counted apart), p50/p95/p99, and the broadcast's messages/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from datetime import datetime
from datetime import timezone as dt_timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results" / "load.json"
QUEUE = "bench-load"
AUTH_TOKEN = "stand-in-auth-token"  # the stand-in's and the webhooks' Twilio token
STAND_IN_SID = "AC00000000000000000000000000000000"
TEXTS = [("STOP", 0.25), ("YES", 0.15), ("HELP", 0.15), ("hello, is the sale still on?", 0.45)]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="10,000 contacts, at most 45 s of load")
    parser.add_argument("--contacts", type=int, default=None, help="contacts in the broadcast (default 100,000)")
    parser.add_argument("--max-seconds", type=float, default=None, help="hard stop for the load phase (default 240)")
    parser.add_argument("--concurrency", type=int, default=16, help="HTTP clients in flight at once")
    parser.add_argument("--webhook-share", type=float, default=0.5, help="share of requests that are webhooks")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--web-threads", type=int, default=4)
    parser.add_argument("--celery-workers", type=int, default=1)
    parser.add_argument("--latency-ms", type=int, default=20, help="stand-in latency per provider call")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()
    args.contacts = args.contacts or (10_000 if args.smoke else 100_000)
    args.max_seconds = args.max_seconds or (45.0 if args.smoke else 240.0)
    return args


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def setup(args, web_port):
    os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/helper_reliability_load")
    os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/7")
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/8")
    if not os.environ["DATABASE_URL"].startswith("postgres") or not os.environ["CELERY_BROKER_URL"].startswith("redis"):
        sys.exit("bench/load.py needs PostgreSQL (DATABASE_URL) and Redis (CELERY_BROKER_URL)")
    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings.local", DJANGO_DEBUG="0", CELERY_QUEUE=QUEUE, LOG_LEVEL="WARNING",
        BROADCAST_SMS_RATE_PER_SECOND="0", BROADCAST_SEND_CONCURRENCY="32", BROADCAST_CLAIM_SIZE="32",
        BROADCAST_BATCH_SIZE="500", SMS_PROVIDER="twilio", TWILIO_ACCOUNT_SID=STAND_IN_SID, TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        TWILIO_FROM_NUMBER="+15005550006", PUBLIC_BASE_URL=f"http://127.0.0.1:{web_port}",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost", PYTHONPATH=str(ROOT),
    )
    from bench.broadcast import _create_database

    _recreate_database(os.environ["DATABASE_URL"], _create_database)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)


def _recreate_database(url, create):
    import dj_database_url
    import psycopg

    config = dj_database_url.parse(url)
    with psycopg.connect(host=config["HOST"] or "127.0.0.1", port=config["PORT"] or 5432, user=config["USER"] or "postgres",
                         password=config["PASSWORD"] or None, dbname="postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{config["NAME"]}" WITH (FORCE)')
    create(url)


AREA_CODES = (415, 212, 646, 312, 617, 206, 303, 404, 512, 702)


def phone(i: int) -> str:
    return f"+1{AREA_CODES[i // 10000 % len(AREA_CODES)]}555{i % 10000:04d}"


def seed(n):
    """n contacts (real numbers, keyed pseudonyms, as the services would make them) with a current
    SMS consent on a "load" topic, loaded with COPY; and an admin API token."""
    import io

    from django.core.management import call_command
    from django.db import connection

    from consent import services
    from consent.ledger import pseudonym_for

    assert n <= 10_000 * len(AREA_CODES)
    topic = services.topic_create(slug="load", name="Load", keywords=["LOAD"], consent_text="I agree.",
                                  confirmation_message="Reply YES to confirm, STOP to cancel.",
                                  help_message="Load test. Reply STOP to opt out.", consent_ttl_days=None)
    with connection.cursor() as db:
        with db.cursor.copy("COPY consent_contact (phone, phone_pseudonym, country, timezone, timezones, attributes, "
                            "created_at) FROM STDIN") as copy:
            for i in range(n):
                number = phone(i)
                copy.write_row((number, pseudonym_for(number), "US", "America/New_York", '["America/New_York"]',
                                '{"first_name": "Ada"}', "now"))
        db.execute(
            "INSERT INTO consent_consent (contact_id, topic_id, channel, status, text_id, source, confirmed_at, updated_at) "
            "SELECT id, %s, 'sms', 'active', %s, 'import', now(), now() FROM consent_contact",
            [topic.pk, topic.current_text_id])
    from bench.broadcast import seed_ledger

    seed_ledger(topic)  # each consent's imported event: the send-time gate passes nothing else
    with connection.cursor() as db:
        db.execute("ANALYZE consent_contact; ANALYZE consent_consent")
    out = io.StringIO()
    call_command("create_api_user", "load-admin", role="admin", stdout=out)
    return topic, out.getvalue().strip().splitlines()[-1]


# --- processes ------------------------------------------------------------------------------


class Processes:
    def __init__(self, log_dir):
        self.log_dir, self.started = log_dir, []

    def start(self, name, argv, env=None):
        log = (self.log_dir / f"{name}.log").open("w")
        process = subprocess.Popen(argv, cwd=ROOT, env=env or os.environ, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        self.started.append(process)
        return process

    def stop_all(self):
        from bench.processes import stop_process_groups

        stop_process_groups(list(reversed(self.started)))


def wait_http(port, path="/healthz/", timeout=30.0):
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"nothing answered on port {port}{path} within {timeout} s")


# --- load -----------------------------------------------------------------------------------


def webhook_request(port, sid, sender, body):
    from consent.signatures import twilio_signature

    path = "/webhooks/twilio/inbound/"
    form = {"MessageSid": sid, "SmsMessageSid": sid, "SmsSid": sid, "AccountSid": STAND_IN_SID, "From": sender,
            "To": "+15005550006", "Body": body, "NumMedia": "0", "NumSegments": "1", "ApiVersion": "2010-04-01"}
    signature = twilio_signature(AUTH_TOKEN, f"http://127.0.0.1:{port}{path}", form)
    payload = urllib.parse.urlencode(form).encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(payload)}\r\nX-Twilio-Signature: {signature}\r\nConnection: close\r\n\r\n")
    return head.encode() + payload


def api_request(port, path, token):
    return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Token {token}\r\n"
            f"Accept: application/json\r\nConnection: close\r\n\r\n").encode()


async def one_request(port, raw):
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
    try:
        writer.write(raw)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        status = int(head.split(b" ", 2)[1])
        await asyncio.wait_for(reader.read(), 30)  # Connection: close — read to the end
        return status
    finally:
        writer.close()


class Mix:
    """The request mix, and what each request was (to check afterwards that nothing was lost)."""

    def __init__(self, args, port, token, phones, broadcast_id, seed=7):
        self.args, self.port, self.token, self.phones, self.broadcast_id = args, port, token, phones, broadcast_id
        self.rng = random.Random(seed)
        self.sent_webhooks = []  # (sid, phone, text)
        self.n = 0

    def next(self):
        self.n += 1
        if self.rng.random() < self.args.webhook_share:
            if self.sent_webhooks and self.rng.random() < 0.05:  # a provider redelivery
                sid, phone, text = self.rng.choice(self.sent_webhooks)
                return "webhook_redelivery", webhook_request(self.port, sid, phone, text)
            phone = self.rng.choice(self.phones)
            text = self.rng.choices([t for t, _ in TEXTS], [w for _, w in TEXTS])[0]
            sid = f"SM{self.n:032x}"
            self.sent_webhooks.append((sid, phone, text))
            return "webhook", webhook_request(self.port, sid, phone, text)
        pick = self.rng.random()
        if pick < 0.4:
            path = f"/api/v1/contacts/{urllib.parse.quote(self.rng.choice(self.phones))}/"
        elif pick < 0.6:
            path = "/api/v1/consents/?limit=20&offset=" + str(self.rng.randrange(0, 5000))
        elif pick < 0.85:
            path = f"/api/v1/broadcasts/{self.broadcast_id}/"
        else:
            path = "/api/v1/topics/"
        return "api", api_request(self.port, path, self.token)


async def run_load(mix, concurrency, should_stop):
    results = {}  # kind -> list of (status or None, seconds)

    async def client():
        while not should_stop():
            kind, raw = mix.next()
            started = time.perf_counter()
            try:
                status = await one_request(mix.port, raw)
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError):
                status = None
            results.setdefault(kind, []).append((status, time.perf_counter() - started))

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return results, time.perf_counter() - started


def percentile_ms(latencies, p):
    """The p-th quantile of sorted latencies in seconds, in milliseconds."""
    return round(latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000, 1)


def summarise(results, seconds):
    out = {}
    for kind, rows in sorted(results.items()):
        latencies = sorted(s for _, s in rows)
        errors = sum(1 for status, _ in rows if status is None or status >= 500)
        client_errors = sum(1 for status, _ in rows if status is not None and 400 <= status < 500)
        statuses = {}
        for status, _ in rows:
            statuses[str(status)] = statuses.get(str(status), 0) + 1
        out[kind] = {"requests": len(rows), "per_second": round(len(rows) / seconds, 1),
                     "errors": errors, "error_rate": round(errors / len(rows), 4), "client_errors_4xx": client_errors,
                     "p50_ms": round(statistics.median(latencies) * 1000, 1),
                     "p95_ms": percentile_ms(latencies, 0.95), "p99_ms": percentile_ms(latencies, 0.99),
                     "statuses": statuses}
    return out


def check_nothing_lost(mix, broadcast_id, stand_in):
    """Each webhook stored once; each STOP applied; nobody messaged after their STOP; nobody twice."""
    from collections import Counter

    from django.db.models import Min

    from broadcasts.models import Delivery
    from consent.models import ConsentEvent, EventKind, Message

    sids = {sid for sid, _, _ in mix.sent_webhooks}
    stored = Counter(Message.objects.filter(provider_message_id__in=sids, direction="in")
                     .values_list("provider_message_id", flat=True))
    stops = {phone for _, phone, text in mix.sent_webhooks if text == "STOP"}
    first_stop = dict(ConsentEvent.objects.filter(kind=EventKind.REVOKED, contact__phone__in=stops)
                      .values_list("contact__phone").annotate(at=Min("recorded_at")))
    late = Delivery.objects.filter(broadcast_id=broadcast_id, contact__phone__in=list(first_stop),
                                   claimed_at__isnull=False).values_list("contact__phone", "claimed_at")
    messaged_after_stop = sum(1 for phone, claimed in late if claimed > first_stop[phone])
    received = Counter(m["to"] for m in stand_in.control("messages")["messages"]  # the broadcast's, not replies
                       if str(m.get("body", "")).startswith("Hi Ada"))
    return {
        "webhooks_sent": len(mix.sent_webhooks), "webhook_ids_unique": len(sids),
        "webhook_ids_stored": len(stored), "webhook_ids_stored_twice": sum(1 for n in stored.values() if n > 1),
        "stop_senders": len(stops), "stops_applied": len(first_stop),
        "messaged_after_their_stop": messaged_after_stop,
        "recipients_messaged_twice": sum(1 for n in received.values() if n > 1),
    }


def main():
    args = parse_args()
    web_port = free_port()
    setup(args, web_port)
    log_dir = ROOT / "data" / "bench-load"
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f"seeding {args.contacts:,} contacts …", flush=True)
    started = time.perf_counter()
    topic, token = seed(args.contacts)
    print(f"  seeded in {time.perf_counter() - started:.1f} s", flush=True)

    from bench.broadcast import StandIn, purge_queue
    from broadcasts import services
    from broadcasts.models import Broadcast, BroadcastStatus, Delivery
    from consent.models import Contact

    processes = Processes(log_dir)
    stand_in = StandIn()
    try:
        stand_in.reset(args.latency_ms)
        os.environ.update(TWILIO_API_BASE=stand_in.url)
        from config.celery import app

        app.conf.update(task_default_queue=QUEUE, task_always_eager=False)
        purge_queue()
        processes.start("web", [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{web_port}",
                                "--workers", str(args.web_workers), "--threads", str(args.web_threads),
                                "--worker-class", "gthread", "--timeout", "60"])
        for i in range(args.celery_workers):
            processes.start(f"worker-{i}", [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=threads",
                                            "--concurrency=4", "-Q", QUEUE, "-n", f"load{i}@%h", "--without-gossip",
                                            "--without-mingle", "--without-heartbeat", "--loglevel=WARNING"])
        wait_http(web_port)
        phones = list(Contact.objects.order_by("?").values_list("phone", flat=True)[:2000])
        broadcast = services.broadcast_create(name="load", topic=topic, channel="sms", body="Hi {{ first_name }}, sale!",
                                              respect_quiet_hours=False)
        services.broadcast_schedule(broadcast=broadcast)  # the launch task goes to the worker
        print(f"broadcast {broadcast.pk} to {args.contacts:,} scheduled; load for at most {args.max_seconds:.0f} s …",
              flush=True)
        mix = Mix(args, web_port, token, phones, broadcast.pk)
        load_started = time.monotonic()

        finished = threading.Event()
        halt = threading.Event()

        def watch():  # the ORM may not run inside the event loop: poll from a thread of its own
            from django.db import connection as thread_connection

            while not halt.wait(1.0):
                status = Broadcast.objects.filter(pk=broadcast.pk).values_list("status", flat=True).first()
                if status in (BroadcastStatus.COMPLETED, BroadcastStatus.PAUSED):
                    finished.set()
                    break
            thread_connection.close()

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()

        def should_stop():
            return finished.is_set() or time.monotonic() - load_started > args.max_seconds

        results, seconds = asyncio.run(run_load(mix, args.concurrency, should_stop))
        halt.set()
        watcher.join(5)
        # Let the webhooks still queued behind the load be applied before checking.
        time.sleep(2)
        broadcast.refresh_from_db()
        from django.db.models import Count, Max, Min

        rows = Delivery.objects.filter(broadcast=broadcast)
        span = rows.filter(sent_at__isnull=False).aggregate(first=Min("claimed_at"), last=Max("sent_at"), n=Count("id"))
        send_seconds = (span["last"] - span["first"]).total_seconds() if span["n"] else 0
        report = {
            "when": datetime.now(dt_timezone.utc).isoformat(timespec="seconds"), "machine": platform.platform(),
            "cpus": os.cpu_count(), "contacts": args.contacts, "concurrency": args.concurrency,
            "load_seconds": round(seconds, 1), "stopped_because": "broadcast finished" if finished.is_set()
            else "max-seconds reached",
            "http": summarise(results, seconds),
            "broadcast": {"status": broadcast.status, "status_reason": broadcast.status_reason,
                          "deliveries": dict(rows.order_by().values_list("status").annotate(n=Count("id"))),
                          "messages_per_second": round(span["n"] / send_seconds, 1) if send_seconds else None},
            "checks": check_nothing_lost(mix, broadcast.pk, stand_in),
        }
        total = sum(v["requests"] for v in report["http"].values())
        errors = sum(v["errors"] for v in report["http"].values())
        report["overall"] = {"requests": total, "per_second": round(total / seconds, 1),
                             "error_rate": round(errors / total, 4) if total else None}
    finally:
        processes.stop_all()
        stand_in.stop()
    print(json.dumps(report, indent=2))
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    existing = json.loads(output.read_text()) if output.exists() else {}
    existing["smoke" if args.smoke else "full" if args.contacts == 100_000 else "custom"] = report
    output.write_text(json.dumps(existing, indent=2) + "\n")
    checks = report["checks"]
    ok = (checks["webhook_ids_stored"] == checks["webhook_ids_unique"] and not checks["webhook_ids_stored_twice"]
          and checks["stops_applied"] == checks["stop_senders"] and not checks["messaged_after_their_stop"]
          and not checks["recipients_messaged_twice"])
    print("nothing lost or doubled" if ok else "CHECK FAILED: see checks above", flush=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
