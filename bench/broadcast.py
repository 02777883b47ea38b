"""Broadcast benchmark: fan-out time, delivered messages per second (0 ms and 50 ms provider latency),
the floor each of those is held against, a naive one-task-per-recipient baseline, and peak RSS per
worker process. PostgreSQL + Redis only.

    .venv/bin/python bench/broadcast.py --smoke            # 10,000 contacts, well under a minute
    .venv/bin/python bench/broadcast.py                    # 1,000,000 contacts, ~half with current consent
    .venv/bin/python bench/broadcast.py --contacts 200000 --naive-count 20000

Environment: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/helper_broadcasts_bench; the
database is created and re-seeded when its size differs), CELERY_BROKER_URL (default
redis://127.0.0.1:6379/5), REDIS_URL (default redis://127.0.0.1:6379/6). The bench process also runs
the beat's upkeep every few seconds (as `celery beat` would), so send tasks lost by the broker are
enqueued again.

Figures are printed and merged into bench/results/broadcast.json under the run's mode (smoke/full/custom).
The loopback provider stand-in (tests/stand_in.py) runs in its own process; workers are
`celery worker --pool=threads` processes, one per core, started fresh for each phase.

Phases, in order: for each latency, the product's send (fan-out, then the workers claim, gate,
send and record every delivery), then its floor; then the naive baseline at the first latency.
The floor (bench/floor_sender.py) is the fastest a sender could go on this machine with this
client: as many processes as workers, each streaming its share of the delivery ids of the
product phase's broadcast from broadcasts_delivery (a server-side cursor; no claim, no consent
gate, no status written) and making one POST each through the product's TwilioProvider, built
per sender thread as the product builds it (`from_settings(shared=False)`), on a thread pool of
--send-concurrency threads, against the same stand-in at the same latency, right after the
product phase it is compared with. Each run reports floor delivered/s and product ÷ floor per
latency (under "floor" and in "summary").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime
from datetime import timezone as dt_timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "broadcast.json"
QUEUE = "bench-broadcasts"
STAND_IN_SID = "AC00000000000000000000000000000000"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="10,000 contacts, small naive sample")
    parser.add_argument("--contacts", type=int, default=None, help="contacts in the topic (default 1,000,000)")
    parser.add_argument("--consent-ratio", type=float, default=0.5, help="share of contacts with current consent")
    parser.add_argument("--latencies", default="0,50", help="stand-in latencies in ms, comma-separated")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="worker processes (default: one per core)")
    parser.add_argument("--threads", type=int, default=4, help="Celery tasks run at once per worker process")
    parser.add_argument("--send-concurrency", type=int, default=128, help="provider calls in flight per worker process")
    parser.add_argument("--claim-size", type=int, default=64,
                        help="BROADCAST_CLAIM_SIZE for the workers (the product default is 32: a smaller window between the consent check and the hand-over)")
    parser.add_argument("--batch-size", type=int, default=250,
                        help="deliveries per send task (250: a smoke audience makes 20 tasks for 8 task slots; "
                             "a 500k fan-out enqueues 2,000, ~1.5 s more than 1000-row tasks)")
    parser.add_argument("--prefetch", type=int, default=1,
                        help="Celery prefetch multiplier (1: a worker reserves no more send tasks than it runs at once)")
    parser.add_argument("--naive-count", type=int, default=None, help="recipients sent the naive way (default 2%% of audience, ≥2000)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed per send phase")
    parser.add_argument("--fanout-only", action="store_true", help="measure audience resolution + enqueueing only")
    parser.add_argument("--output", default=str(RESULTS))
    return parser.parse_args()


def setup_django(args):
    os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/helper_broadcasts_bench")
    os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/5")
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/6")
    if not os.environ["DATABASE_URL"].startswith("postgres") or not os.environ["CELERY_BROKER_URL"].startswith("redis"):
        sys.exit("bench/broadcast.py needs PostgreSQL (DATABASE_URL) and Redis (CELERY_BROKER_URL)")
    os.environ.update(DJANGO_SETTINGS_MODULE="config.settings.local", DJANGO_DEBUG="0", CELERY_QUEUE=QUEUE,
                      LOG_LEVEL="WARNING", BROADCAST_SMS_RATE_PER_SECOND="0", BROADCAST_WHATSAPP_RATE_PER_SECOND="0",
                      BROADCAST_SEND_CONCURRENCY=str(args.send_concurrency), BROADCAST_CLAIM_SIZE=str(args.claim_size),
                      BROADCAST_BATCH_SIZE=str(args.batch_size), SMS_PROVIDER="twilio",
                      TWILIO_ACCOUNT_SID=STAND_IN_SID, TWILIO_AUTH_TOKEN="stand-in-auth-token",
                      TWILIO_FROM_NUMBER="+15005550006", PYTHONPATH=str(ROOT))
    sys.path.insert(0, str(ROOT))
    _create_database(os.environ["DATABASE_URL"])
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _create_database(url):
    import dj_database_url
    import psycopg

    config = dj_database_url.parse(url)
    admin = psycopg.connect(host=config["HOST"] or "127.0.0.1", port=config["PORT"] or 5432, user=config["USER"] or "postgres",
                            password=config["PASSWORD"] or None, dbname="postgres", autocommit=True)
    exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [config["NAME"]]).fetchone()
    if not exists:
        admin.execute(f'CREATE DATABASE "{config["NAME"]}"')
    admin.close()


# --- data -----------------------------------------------------------------------------------


def seed(n: int, ratio: float):
    """n contacts on a dedicated topic, round(n × ratio) with a current SMS consent (SQL, seconds)."""
    from django.db import connection

    from consent import services
    from consent.models import ConsentEvent, Contact, Topic

    topic = Topic.objects.filter(slug="bench").first()
    if topic is not None and Contact.objects.count() == n and topic.consents.filter(
            status="active", current_event__isnull=False).count() == round(n * ratio):
        return topic, False
    if ConsentEvent.objects.filter(kind="imported", topic__slug="bench").exists():
        sys.exit(f"the bench ledger cannot be rewritten: drop database {connection.settings_dict['NAME']} to seed it again")
    with connection.cursor() as db:
        db.execute("TRUNCATE broadcasts_delivery, broadcasts_broadcast")
        db.execute("DELETE FROM consent_consent")
        db.execute("DELETE FROM consent_contact WHERE NOT EXISTS (SELECT 1 FROM consent_consentevent e WHERE e.contact_id = consent_contact.id)")
    if topic is None:
        topic = services.topic_create(slug="bench", name="Bench", keywords=["BENCH"], consent_text="c",
                                      confirmation_message="Reply YES", help_message="h", consent_ttl_days=None)
    every = 1 / ratio if ratio > 0 else None
    with connection.cursor() as db:
        db.execute(
            "INSERT INTO consent_contact (phone, phone_pseudonym, country, timezone, timezones, attributes, created_at) "
            "SELECT '+1555' || lpad(i::text, 7, '0'), md5(i::text) || md5('bench' || i::text), 'US', 'America/New_York', "
            "'[\"America/New_York\"]'::jsonb, '{\"first_name\": \"Ada\"}'::jsonb, now() FROM generate_series(1, %s) i",
            [n],
        )
        db.execute(
            "INSERT INTO consent_consent (contact_id, topic_id, channel, status, text_id, source, confirmed_at, updated_at) "
            "SELECT id, %s, 'sms', CASE WHEN (row_number() OVER (ORDER BY id) - 1) %% %s < 1 THEN 'active' ELSE 'revoked' END, "
            "%s, 'import', now(), now() FROM consent_contact",
            [topic.pk, max(1, round(every or 1)), topic.current_text_id],
        )
    seed_ledger(topic)
    # Freshly bulk-loaded tables have no visibility map and unset hint bits until autovacuum gets
    # to them, which made the first fan-out after a seed several seconds slower than the next.
    with connection.cursor() as db:
        for table in ("consent_contact", "consent_consent", "consent_suppression", "consent_consentevent"):
            db.execute(f"VACUUM (ANALYZE) {table}")
    return topic, True


def seed_ledger(topic):
    """An `imported` event for every active consent of the topic, chained as event_append chains it,
    and each consent's pointer to its event: the send-time gate passes nothing else."""
    import uuid

    from django.db import connection, transaction
    from django.utils import timezone

    from consent.hashing import chain_hash
    from consent.ledger import chained_fields, ledger_head
    from consent.models import ConsentEvent

    text = topic.current_text
    now = timezone.now()
    columns = ("seq", "uuid", "occurred_at", "recorded_at", "kind", "contact_id", "subject", "topic_id", "topic_slug",
               "channel", "source", "actor", "text_id", "text_version", "text_sha256", "evidence", "prev_hash", "hash")
    with transaction.atomic(), connection.cursor() as db:
        db.execute("SELECT seq FROM consent_chainhead WHERE id = 1 FOR UPDATE")
        seq, head = ledger_head()
        db.execute("SELECT c.contact_id, k.phone_pseudonym FROM consent_consent c JOIN consent_contact k ON k.id = c.contact_id "
                   "WHERE c.topic_id = %s AND c.status = 'active' ORDER BY c.id", [topic.pk])
        consents = db.fetchall()
        with db.cursor.copy(f"COPY consent_consentevent ({', '.join(columns)}) FROM STDIN") as copy:
            for contact_id, pseudonym in consents:
                seq += 1
                event = ConsentEvent(seq=seq, uuid=uuid.uuid4(), occurred_at=now, recorded_at=now, kind="imported",
                                     contact_id=contact_id, subject=pseudonym, topic=topic, topic_slug=topic.slug,
                                     channel="sms", source="import", actor="system", text=text,
                                     text_version=text.version, text_sha256=text.sha256,
                                     evidence={"import_batch": "bench"}, prev_hash=head)
                event.hash = head = chain_hash(head, chained_fields(event))
                copy.write_row((seq, event.uuid, now, now, "imported", contact_id, pseudonym, topic.pk, topic.slug, "sms",
                                "import", "system", text.pk, text.version, text.sha256, json.dumps(event.evidence),
                                event.prev_hash, event.hash))
        db.execute("UPDATE consent_chainhead SET seq = %s, hash = %s WHERE id = 1", [seq, head])
        db.execute("ANALYZE consent_consentevent")  # a plan for the join below that knows the rows just copied
        db.execute("UPDATE consent_consent c SET current_event_id = e.id FROM consent_consentevent e "
                   "WHERE e.contact_id = c.contact_id AND e.topic_id = c.topic_id AND e.channel = c.channel "
                   "AND e.kind = 'imported' AND c.topic_id = %s AND c.status = 'active'", [topic.pk])


# --- processes ------------------------------------------------------------------------------


class StandIn:
    def __init__(self):
        self.process = subprocess.Popen([sys.executable, "-m", "tests.stand_in", "--port", "0"], cwd=ROOT,
                                        stdout=subprocess.PIPE, text=True, start_new_session=True)
        self.url = self.process.stdout.readline().strip()

    def control(self, path, payload=None):
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(f"{self.url}/__stand_in/{path}", data=data, method="POST" if data is not None else "GET",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"{}")

    def reset(self, latency_ms):
        self.control("reset", {})
        self.control("config", {"latency_ms": latency_ms})

    def stop(self):
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(10)


def rss_kb(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS) of a process in kB, from /proc."""
    values = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                values[line.split(":")[0]] = int(line.split()[1])
    except FileNotFoundError:
        pass
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc; 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float:
    """CPU seconds of every PostgreSQL process alive now (backends come and go: compare totals of a phase)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in {"postgres", "postmaster"}:
                    total += cpu_seconds(int(entry.name))
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                pass
    return total


class Workers:
    """`celery worker --pool=threads` processes; samples their RSS while they run.

    They start on an empty stand-by queue and are all told to consume the bench queue once every
    one of them is up, as long-running workers would be when a broadcast starts: otherwise the
    first worker up sends alone while the other is still importing Django (a second or two, which
    is most of a smoke run).
    """

    def __init__(self, count, threads, env, log_dir, prefetch=2):
        self.processes = []
        self.names = [f"bench{i}@{socket.gethostname()}" for i in range(count)]
        for i in range(count):
            log = (log_dir / f"worker-{i}.log").open("w")
            self.processes.append(subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=threads", f"--concurrency={threads}",
                 "-Q", f"{QUEUE}-standby", "-n", self.names[i], "-I", "bench.naive_tasks", "--without-gossip", "--without-mingle",
                 "--without-heartbeat", "--loglevel=WARNING", f"--prefetch-multiplier={prefetch}"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            ))
        self.samples = []  # (seconds since start, [rss kB per worker])
        self.cpu = {}  # pid -> last CPU seconds seen (a worker's figure survives its exit)
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def start_consuming(self, timeout=120.0):
        """Wait until every worker answers a ping, then have them all consume the bench queue."""
        from config.celery import app

        deadline = time.monotonic() + timeout
        while True:
            replies = app.control.ping(destination=self.names, timeout=0.5)
            if len(replies) >= len(self.names):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers not up after {timeout:.0f} s: {replies}")
        answers = app.control.add_consumer(QUEUE, destination=self.names, reply=True, timeout=10)
        if len(answers) < len(self.names):
            raise RuntimeError(f"not every worker consumes {QUEUE}: {answers}")

    def _sample(self):
        while not self._stop.wait(0.5):
            self.samples.append((round(time.monotonic() - self.started, 1), [rss_kb(p.pid)[0] for p in self.processes]))
            self.sample_cpu()

    def sample_cpu(self) -> float:
        for process in self.processes:
            seconds = cpu_seconds(process.pid)
            if seconds:
                self.cpu[process.pid] = seconds
        return sum(self.cpu.values())

    def peak_mb(self) -> list[float]:
        return [round(rss_kb(p.pid)[1] / 1024, 1) for p in self.processes]

    def stop(self):
        peaks = self.peak_mb()
        self.sample_cpu()
        self._stop.set()
        from bench.processes import stop_process_groups

        stop_process_groups(self.processes)
        return peaks

    def rss_profile_mb(self) -> dict:
        """RSS per worker early, half-way and at the end of the phase (growth shows here)."""
        if not self.samples:
            return {}
        picks = {"early": self.samples[min(len(self.samples) - 1, 4)], "middle": self.samples[len(self.samples) // 2],
                 "end": self.samples[-1]}
        return {name: [round(kb / 1024, 1) for kb in sample[1]] for name, sample in picks.items()}


def purge_queue():
    from config.celery import app

    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(QUEUE)


# --- phases ---------------------------------------------------------------------------------


def new_broadcast(topic, name):
    from broadcasts import services

    broadcast = services.broadcast_create(name=name, topic=topic, channel="sms", body="Hi {{ first_name }}, 20% off today.",
                                          respect_quiet_hours=False)
    services.broadcast_schedule(broadcast=broadcast)  # due now; its launch task is purged below
    return broadcast


def launch_and_fan_out(broadcast, enqueue=True) -> float:
    """Audience resolution + delivery rows + enqueueing every send batch; returns the seconds taken."""
    from broadcasts import services

    purge_queue()
    started = time.perf_counter()
    assert services.broadcast_launch(broadcast_id=broadcast.pk)
    services.broadcast_fanout(broadcast_id=broadcast.pk)
    elapsed = time.perf_counter() - started
    if not enqueue:
        # The send tasks are queued by name once the fan-out commits; no worker consumes the bench
        # queue between phases, so emptying it now leaves the rows to the caller's own tasks.
        purge_queue()
    return elapsed


def wait_sent(broadcast_id, target, timeout, tick=True):
    from broadcasts.models import Broadcast, BroadcastStatus, Delivery, DeliveryStatus
    from broadcasts.services import broadcasts_tick

    deadline = time.monotonic() + timeout
    next_tick = time.monotonic() + 5
    while time.monotonic() < deadline:
        if tick and time.monotonic() >= next_tick:
            broadcasts_tick()  # what `celery beat` runs every few seconds
            next_tick = time.monotonic() + 5
        status = Broadcast.objects.filter(pk=broadcast_id).values_list("status", flat=True).first()
        if status == BroadcastStatus.PAUSED:
            print(f"  broadcast paused itself: {Broadcast.objects.get(pk=broadcast_id).status_reason}", flush=True)
            return False
        done = Delivery.objects.filter(broadcast_id=broadcast_id).exclude(
            status__in=[DeliveryStatus.QUEUED, DeliveryStatus.SENDING, DeliveryStatus.DEFERRED]).count()
        if done >= target:
            return True
        time.sleep(0.5)
    return False


def send_rate(broadcast_id) -> dict:
    from django.db.models import Count, Max, Min

    from broadcasts.models import Delivery

    rows = Delivery.objects.filter(broadcast_id=broadcast_id, sent_at__isnull=False)
    span = rows.aggregate(first=Min("claimed_at"), last=Max("sent_at"), n=Count("id"))
    seconds = (span["last"] - span["first"]).total_seconds() if span["n"] else 0
    statuses = dict(Delivery.objects.filter(broadcast_id=broadcast_id).order_by().values_list("status").annotate(n=Count("id")))
    return {"sent": span["n"], "seconds": round(seconds, 2), "per_second": round(span["n"] / seconds, 1) if seconds else None,
            "statuses": statuses}


def worker_env():
    return {**os.environ}


def phase_batched(topic, stand_in, latency_ms, args, log_dir, audience):
    stand_in.reset(latency_ms)
    broadcast = new_broadcast(topic, f"bench {latency_ms} ms")
    fanout_s = launch_and_fan_out(broadcast)
    from broadcasts.models import Broadcast

    broadcast.refresh_from_db()
    print(f"  fan-out: {broadcast.audience_size} deliveries, send batches enqueued in {fanout_s:.2f} s", flush=True)
    workers = Workers(args.workers, args.threads, worker_env(), log_dir, args.prefetch)
    started = time.perf_counter()
    try:
        workers.start_consuming()
        # CPU from here on is the send's (the workers' start-up is left out).
        worker_cpu, stand_in_cpu, pg_cpu = workers.sample_cpu(), cpu_seconds(stand_in.process.pid), postgres_cpu_seconds()
        ok = wait_sent(broadcast.pk, broadcast.audience_size, args.timeout)
        wall = time.perf_counter() - started
        stand_in_cpu, pg_cpu = cpu_seconds(stand_in.process.pid) - stand_in_cpu, postgres_cpu_seconds() - pg_cpu
    finally:
        peaks = workers.stop()
    worker_cpu = sum(workers.cpu.values()) - worker_cpu
    profile = workers.rss_profile_mb()
    rate = send_rate(broadcast.pk)
    status = Broadcast.objects.get(pk=broadcast.pk).status
    accepted = stand_in.control("stats")["accepted"]
    result = {"latency_ms": latency_ms, "broadcast_id": broadcast.pk, "audience": broadcast.audience_size,
              "fanout_seconds": round(fanout_s, 2), "completed": ok, "status": status, "wall_seconds_incl_worker_start": round(wall, 2),
              "delivered_per_second": rate["per_second"], "send_span_seconds": rate["seconds"], "sent": rate["sent"],
              "statuses": rate["statuses"], "provider_accepted": accepted,
              "duplicates": max(0, accepted - rate["sent"]), "worker_peak_rss_mb": peaks, "worker_rss_mb": profile}
    if rate["sent"]:
        # CPU per delivered message while sending (PostgreSQL: every backend, other databases' included).
        result["cpu_us_per_message"] = {
            "workers": round(worker_cpu * 1e6 / rate["sent"]), "stand_in": round(stand_in_cpu * 1e6 / rate["sent"]),
            "postgres": round(pg_cpu * 1e6 / rate["sent"])}
    print(f"  {latency_ms} ms: {rate['sent']} sent in {rate['seconds']} s = {rate['per_second']}/s; "
          f"provider accepted {accepted}; peak RSS {peaks} MB; CPU per message {result.get('cpu_us_per_message')} us",
          flush=True)
    return result


class FloorSenders:
    """`python -m bench.floor_sender` processes (one per worker process of the product phase).

    Each reports `ready` once set up; the start is given to all of them at once, so that, as for
    the product's workers, start-up is left out and no process sends alone.
    """

    def __init__(self, count, broadcast_id, concurrency, body, env, log_dir):
        self.processes, self.lines = [], queue.Queue()
        for i in range(count):
            log = (log_dir / f"floor-{i}.log").open("w")
            process = subprocess.Popen(
                [sys.executable, "-m", "bench.floor_sender", "--broadcast", str(broadcast_id), "--part", str(i),
                 "--parts", str(count), "--concurrency", str(concurrency), "--body", body],
                cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
                start_new_session=True,
            )
            self.processes.append(process)
            threading.Thread(target=self._read, args=(i, process), daemon=True).start()

    def _read(self, i, process):
        for line in process.stdout:
            self.lines.put((i, line.strip()))
        self.lines.put((i, None))  # its stdout closed: it exited

    def _collect(self, predicate, timeout, what):
        """One line per process that satisfies `predicate` (parsed), within `timeout` seconds."""
        found, deadline = {}, time.monotonic() + timeout
        while len(found) < len(self.processes):
            try:
                i, line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(f"floor senders: no {what} from {sorted(set(range(len(self.processes))) - set(found))} "
                                   f"after {timeout:.0f} s") from None
            if line is None:
                if i not in found:
                    raise RuntimeError(f"floor sender {i} exited before its {what} (see data/bench-logs/floor-{i}.log)")
                continue
            value = predicate(line)
            if value is not None:
                found[i] = value
        return [found[i] for i in range(len(self.processes))]

    def wait_ready(self, timeout=120.0):
        self._collect(lambda line: True if line == "ready" else None, timeout, "ready")

    def start(self):
        for process in self.processes:
            process.stdin.write("go\n")
            process.stdin.flush()

    def results(self, timeout):
        return self._collect(lambda line: json.loads(line) if line.startswith("{") else None, timeout, "result")

    def stop(self):
        from bench.processes import stop_process_groups

        stop_process_groups(self.processes)


def phase_floor(stand_in, latency_ms, args, log_dir, broadcast_id):
    """The floor: the product phase's delivery rows, one POST each, with nothing of the product around it.

    The same stand-in (reset, the same latency), as many processes as the product's workers, as
    many provider calls in flight per process (BROADCAST_SEND_CONCURRENCY), the same client
    built the same way per sender thread, the same message text: what the product would reach
    if its claim, gate and record cost nothing.
    """
    from broadcasts.models import Broadcast, Delivery
    from broadcasts.sending import outgoing_for

    stand_in.reset(latency_ms)
    broadcast = Broadcast.objects.get(pk=broadcast_id)
    sample = Delivery.objects.filter(broadcast=broadcast).select_related("contact").order_by("contact_id").first()
    rows = Delivery.objects.filter(broadcast=broadcast).count()
    body = outgoing_for(broadcast=broadcast, phone=sample.contact.phone, country=sample.contact.country,
                        attributes=sample.contact.attributes, reference="").body if sample else ""
    senders = FloorSenders(args.workers, broadcast_id, args.send_concurrency, body, worker_env(), log_dir)
    try:
        senders.wait_ready()
        stand_in_cpu, pg_cpu = cpu_seconds(stand_in.process.pid), postgres_cpu_seconds()
        senders.start()
        reports = senders.results(args.timeout)
        stand_in_cpu, pg_cpu = cpu_seconds(stand_in.process.pid) - stand_in_cpu, postgres_cpu_seconds() - pg_cpu
    finally:
        senders.stop()
    sent = sum(r["sent"] for r in reports)
    seconds = max(r["finished"] for r in reports) - min(r["started"] for r in reports)
    accepted = stand_in.control("stats")["accepted"]
    result = {"latency_ms": latency_ms, "broadcast_id": broadcast_id, "rows": rows, "sent": sent,
              "failed": sum(r["failed"] for r in reports), "send_span_seconds": round(seconds, 2),
              "delivered_per_second": round(sent / seconds, 1) if sent and seconds > 0 else None,
              "provider_accepted": accepted, "sender_peak_rss_mb": [r["peak_rss_mb"] for r in reports]}
    if sent:
        result["cpu_us_per_message"] = {
            "senders": round(sum(r["cpu_seconds"] for r in reports) * 1e6 / sent),
            "stand_in": round(stand_in_cpu * 1e6 / sent), "postgres": round(pg_cpu * 1e6 / sent)}
    print(f"  floor {latency_ms:g} ms: {sent} sent in {result['send_span_seconds']} s = {result['delivered_per_second']}/s; "
          f"provider accepted {accepted}; CPU per message {result.get('cpu_us_per_message')} us", flush=True)
    return result


def phase_naive(topic, stand_in, latency_ms, count, args, log_dir):
    from bench.naive_tasks import naive_send_one
    from broadcasts.models import Delivery

    stand_in.reset(latency_ms)
    broadcast = new_broadcast(topic, f"naive {latency_ms} ms")
    launch_and_fan_out(broadcast, enqueue=False)
    contact_ids = list(Delivery.objects.filter(broadcast=broadcast).order_by("contact_id")
                       .values_list("contact_id", flat=True)[:count])
    started = time.perf_counter()
    for contact_id in contact_ids:
        naive_send_one.delay(broadcast.pk, contact_id)
    enqueue_s = time.perf_counter() - started
    workers = Workers(args.workers, args.threads, worker_env(), log_dir, args.prefetch)
    try:
        workers.start_consuming()
        ok = wait_sent(broadcast.pk, len(contact_ids), args.timeout, tick=False)
    finally:
        peaks = workers.stop()
    rate = send_rate(broadcast.pk)
    from broadcasts import services

    services.broadcast_cancel(broadcast=broadcast, reason="bench: naive sample done")
    result = {"latency_ms": latency_ms, "recipients": len(contact_ids), "completed": ok, "enqueue_seconds": round(enqueue_s, 2),
              "delivered_per_second": rate["per_second"], "send_span_seconds": rate["seconds"], "sent": rate["sent"],
              "worker_peak_rss_mb": peaks}
    print(f"  naive {latency_ms} ms: {rate['sent']} sent in {rate['seconds']} s = {rate['per_second']}/s "
          f"(enqueueing {len(contact_ids)} tasks took {enqueue_s:.1f} s)", flush=True)
    return result


def main():
    args = parse_args()
    contacts = args.contacts or (10_000 if args.smoke else 1_000_000)
    mode = "smoke" if args.smoke else ("full" if contacts == 1_000_000 else f"custom-{contacts}")
    setup_django(args)
    from config.celery import app

    app.conf.task_always_eager = False
    app.conf.task_default_queue = QUEUE
    log_dir = ROOT / "data" / "bench-logs"
    log_dir.mkdir(parents=True, exist_ok=True)

    print(f"seeding {contacts} contacts ({args.consent_ratio:.0%} with current consent) …", flush=True)
    started = time.perf_counter()
    topic, seeded = seed(contacts, args.consent_ratio)
    print(f"  {'seeded' if seeded else 'reused'} in {time.perf_counter() - started:.1f} s", flush=True)
    from django.db import connection

    from consent.selectors import audience_consents

    # Start from no broadcast at all (the bench database is its own): earlier runs' delivery rows
    # would make each run's fan-out slower than the last (a bigger table and indexes to insert
    # into), and a broadcast left sending by an interrupted run would be woken by the upkeep this
    # bench runs and send to the same stand-in, counting as duplicates of this run's messages.
    with connection.cursor() as db:
        db.execute("TRUNCATE broadcasts_delivery, broadcasts_broadcast")
    audience = audience_consents(topic=topic, channel="sms").count()
    naive_count = args.naive_count or max(2000, audience // 50)
    latencies = [float(x) for x in args.latencies.split(",") if x.strip()]

    stand_in = StandIn()
    os.environ["TWILIO_API_BASE"] = stand_in.url  # the workers' provider talks to the stand-in
    from django.conf import settings

    settings.TWILIO_API_BASE = stand_in.url
    signal.signal(signal.SIGTERM, lambda *a: sys.exit("terminated"))
    results = {"mode": mode, "contacts": contacts, "audience": audience, "started_at": datetime.now(dt_timezone.utc).isoformat(),
               "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
               "config": {"workers": args.workers, "threads_per_worker": args.threads,
                          "send_concurrency_per_worker": args.send_concurrency, "claim_size": args.claim_size,
                          "batch_size": args.batch_size, "prefetch_multiplier": args.prefetch, "throttle": "off"},
               "batched": [], "floor": [], "naive": []}
    if args.fanout_only:
        latencies = []
        broadcast = new_broadcast(topic, "fan-out only")
        fanout_s = launch_and_fan_out(broadcast)
        broadcast.refresh_from_db()
        from broadcasts import services

        services.broadcast_cancel(broadcast=broadcast, reason="bench: fan-out only")
        purge_queue()
        print(f"  fan-out: {broadcast.audience_size} deliveries, send batches enqueued in {fanout_s:.2f} s", flush=True)
        results["batched"].append({"latency_ms": None, "audience": broadcast.audience_size, "fanout_seconds": round(fanout_s, 2),
                                   "worker_peak_rss_mb": [], "duplicates": 0})
        mode += "-fanout"
        results["mode"] = mode
    try:
        for latency in latencies:
            print(f"batched send, stand-in latency {latency:g} ms", flush=True)
            product = phase_batched(topic, stand_in, latency, args, log_dir, audience)
            results["batched"].append(product)
            save(args.output, mode, results)
            # Right after the product at this latency: the same rows, stand-in and machine load.
            print(f"floor (minimal sender: stream the rows, one POST each), latency {latency:g} ms", flush=True)
            floor = phase_floor(stand_in, latency, args, log_dir, product["broadcast_id"])
            if product["delivered_per_second"] and floor["delivered_per_second"]:
                floor["product_to_floor"] = round(product["delivered_per_second"] / floor["delivered_per_second"], 2)
            print(f"  product ÷ floor at {latency:g} ms: {floor.get('product_to_floor')}", flush=True)
            results["floor"].append(floor)
            save(args.output, mode, results)
        for latency in latencies[:1]:
            print(f"naive baseline (one task per recipient), {naive_count} recipients, latency {latency:g} ms", flush=True)
            results["naive"].append(phase_naive(topic, stand_in, latency, naive_count, args, log_dir))
    finally:
        stand_in.stop()
        purge_queue()
    results["finished_at"] = datetime.now(dt_timezone.utc).isoformat()
    save(args.output, mode, results)
    print(json.dumps(results["summary"], indent=2))
    print(f"wrote {args.output} [{mode}]")


def summarise(results):

    first = results["batched"][0] if results["batched"] else {}
    by_latency = {r["latency_ms"]: r for r in results["batched"]}
    floor = {r["latency_ms"]: r for r in results.get("floor", [])}
    naive = results["naive"][0] if results["naive"] else {}
    summary = {
        "fanout_seconds": first.get("fanout_seconds"),
        "delivered_per_second_0ms": by_latency.get(0.0, {}).get("delivered_per_second"),
        "delivered_per_second_50ms": by_latency.get(50.0, {}).get("delivered_per_second"),
        "floor_per_second_0ms": floor.get(0.0, {}).get("delivered_per_second"),
        "floor_per_second_50ms": floor.get(50.0, {}).get("delivered_per_second"),
        "product_to_floor_0ms": floor.get(0.0, {}).get("product_to_floor"),
        "product_to_floor_50ms": floor.get(50.0, {}).get("product_to_floor"),
        "naive_per_second_0ms": naive.get("delivered_per_second"),
        "peak_rss_mb_max": max((max(r["worker_peak_rss_mb"]) for r in results["batched"] if r["worker_peak_rss_mb"]), default=None),
        "duplicates": sum(r["duplicates"] for r in results["batched"]),
    }
    if summary["delivered_per_second_0ms"] and summary["delivered_per_second_50ms"]:
        summary["ratio_50ms_to_0ms"] = round(summary["delivered_per_second_50ms"] / summary["delivered_per_second_0ms"], 2)
    if summary["delivered_per_second_0ms"] and summary["naive_per_second_0ms"]:
        summary["speedup_over_naive"] = round(summary["delivered_per_second_0ms"] / summary["naive_per_second_0ms"], 1)
    summary["targets"] = {
        "fanout_le_15s": (summary["fanout_seconds"] or 1e9) <= 15,
        "rate_0ms_ge_1500": (summary["delivered_per_second_0ms"] or 0) >= 1500,
        "rate_50ms_ge_80pct": summary.get("ratio_50ms_to_0ms", 0) >= 0.8,
        "speedup_ge_3x": summary.get("speedup_over_naive", 0) >= 3,
        "rss_lt_300mb": (summary["peak_rss_mb_max"] or 1e9) < 300,
    }
    results["summary"] = summary


def save(path, mode, results):
    """Write this run's figures after each phase, merged into the file under `mode`."""
    summarise(results)
    output = Path(path)
    output.parent.mkdir(parents=True, exist_ok=True)
    merged = json.loads(output.read_text()) if output.exists() else {}
    merged[mode] = results
    output.write_text(json.dumps(merged, indent=2, default=str) + "\n")



if __name__ == "__main__":
    main()
