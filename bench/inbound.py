"""Inbound webhook benchmark: signed Twilio YES and STOP webhooks against gunicorn, PostgreSQL and Redis.

    flock /tmp/bench.lock .venv/bin/python bench/inbound.py [--contacts 2000] [--concurrency 16]
        [--rate 300] [--duration 60] [--duplicates 0.1] [--workers 4] [--threads 2] [--database-url postgres://...]

One run, in this order:
1. A fresh PostgreSQL database (default `bench_inbound`), migrated; contacts with a pending SMS consent
   (double opt-in, step one, through the services): `--contacts` for the saturation phases and
   rate × duration / 2 for the sustained one.
2. **The floor**: a bare Django project (bench/floor/: no apps, no middleware) under the same gunicorn
   command, whose one view verifies the Twilio signature and does one INSERT. Saturated as below.
3. **The service**: `gunicorn config.wsgi` (production settings, console providers) and one Celery
   worker applying inbound messages (`-Q` the apply queue, INBOUND_APPLY_QUEUE); replies go to a queue
   no worker consumes, so that only intake and applying are measured. The worker runs with the CPU
   shares docker-compose.yml gives its `worker` (`cpu_shares`), in a cgroup of its own as Docker puts a
   container, when this machine lets the benchmark make one (root, cgroup v1's or v2's cpu controller);
   else without, and the results say which (`config.apply_priority`). Warm-up on contacts of their own.
   - saturation: from one asyncio load generator with `--concurrency` keep-alive connections, every
     contact's signed YES, then every contact's STOP, a fraction sent twice (as providers redeliver):
     accepted webhooks/s, p50/p99 of the 200, CPU per request of web, database, Redis and worker;
   - sustained: `--rate` webhooks/s for `--duration` s, open loop (each request at its instant), each
     contact's YES then its STOP a second later: p50/p99 of the 200, and from the 200 to applied
     (the receipt's applied_at), and how many rows a batch applied on average (a batch marks its
     rows with one applied_at).
4. Checks that every webhook was applied exactly once (one receipt and one inbound message per
   provider id, each receipt applied, N confirmed and N revoked events, one reply each, an intact
   ledger chain). Written to bench/results/inbound.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results" / "inbound.json"
AUTH_TOKEN = "bench-twilio-auth-token"
QUEUE = "bench-inbound"  # replies and prompts: no worker consumes it
APPLY_QUEUE = "bench-inbound-apply"  # the apply task: the benchmark's worker
AREA_CODES = (415, 212, 646, 312, 617, 206, 303, 404, 512, 702)


def phone(i: int) -> str:
    return f"+1{AREA_CODES[i // 10000 % len(AREA_CODES)]}555{i % 10000:04d}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ed25519_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def environment(args, port: int) -> dict:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(48),
        CONSENT_PSEUDONYM_KEY=secrets.token_urlsafe(48),
        AUDIT_SIGNING_KEY=ed25519_pem(),
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        DJANGO_SECURE_SSL_REDIRECT="0",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DATABASE_URL=args.database_url,
        CELERY_BROKER_URL=args.broker_url,
        CELERY_QUEUE=QUEUE,
        INBOUND_APPLY_QUEUE=APPLY_QUEUE,
        REDIS_URL=args.redis_url,
        SMS_PROVIDER="console",
        WHATSAPP_PROVIDER="console",
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        TWILIO_ACCOUNT_SID="",
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    return env


def recreate_database(url: str) -> None:
    import psycopg

    parts = urllib.parse.urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urllib.parse.urlunsplit(parts._replace(path="/postgres", query=""))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def store_arguments(parser, database: str) -> None:
    """The stores the benchmarks of the inbound path run against: PostgreSQL (database `database`), the
    broker and Redis."""
    parser.add_argument("--database-url", default=f"postgres://postgres@127.0.0.1:5432/{database}")
    parser.add_argument("--broker-url", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")


def migrated_environment(args, port: int) -> dict:
    """The service's environment (`environment`), its database recreated and migrated for this run."""
    env = environment(args, port)
    recreate_database(args.database_url)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True,
                   timeout=600)
    return env


def setup_data(n: int) -> int:
    """N contacts (phone(0) … phone(n-1)) with a pending SMS consent; returns the topic id. Runs in this process."""
    import django

    django.setup()
    from consent import services
    from consent.models import Source

    topic = services.topic_create(
        slug="promo", name="Bench promotions", keywords=["PROMO"],
        consent_text="I agree to receive bench promotions.", confirmation_message="Reply YES to confirm, STOP to cancel.",
        help_message="Bench help. STOP to opt out.", consent_ttl_days=365,
    )
    for i in range(n):
        services.optin_request(phone=phone(i), topic=topic, channel="sms", source=Source.API,
                               evidence={"ip": "192.0.2.1", "bench": True})
    # A YES confirms only prompts handed to the provider: hand them over (console provider) before measuring.
    from consent.messaging import message_deliver
    from consent.models import Message

    for message_id in Message.objects.filter(status=Message.Status.QUEUED).values_list("id", flat=True):
        message_deliver(message_id=message_id)
    return topic.pk


def twilio_form(sid: str, sender: str, body: str) -> dict[str, str]:
    """The form of a Twilio inbound SMS webhook, as Twilio sends it."""
    return {
        "ToCountry": "US", "SmsMessageSid": sid, "NumMedia": "0", "SmsSid": sid, "SmsStatus": "received",
        "Body": body, "FromCountry": "US", "To": "+14155550199", "NumSegments": "1", "MessageSid": sid,
        "AccountSid": "AC00000000000000000000000000000000", "From": sender, "ApiVersion": "2010-04-01",
    }


def build_request(port: int, sid: str, sender: str, body: str) -> bytes:
    from consent.signatures import twilio_signature

    path = "/webhooks/twilio/inbound/"
    form = twilio_form(sid, sender, body)
    signature = twilio_signature(AUTH_TOKEN, f"http://127.0.0.1:{port}{path}", form)
    payload = urllib.parse.urlencode(form).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(payload)}\r\n"
        f"X-Twilio-Signature: {signature}\r\nUser-Agent: TwilioProxy/1.1\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode() + payload


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    if length:
        await reader.readexactly(length)
    return status, headers.get("connection", "").lower() != "close"


async def run_phase(port: int, requests: list[bytes], concurrency: int) -> dict:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for request in requests:
        queue.put_nowait(request)
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def client():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while not queue.empty():
                request = queue.get_nowait()
                started = time.perf_counter()
                writer.write(request)
                status, keep_alive = await _read_response(reader)
                latencies.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1
                if not keep_alive:
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "requests": len(latencies),
        "seconds": round(elapsed, 3),
        "requests_per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p90_ms": round(ordered[int(len(ordered) * 0.90) - 1] * 1000, 2),
        "p99_ms": round(ordered[max(0, int(len(ordered) * 0.99) - 1)] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
        "statuses": statuses,
    }


def with_duplicates(requests: list[bytes], fraction: float, rng: random.Random) -> tuple[list[bytes], int]:
    """Each chosen webhook is sent a second time, close to the first (another connection)."""
    out = list(requests)
    chosen = rng.sample(range(len(requests)), int(len(requests) * fraction))
    for index in sorted(chosen, reverse=True):
        out.insert(min(len(out), index + rng.randint(1, 8)), requests[index])
    return out, len(chosen)


def cpu_seconds(match) -> dict[int, float]:
    """User + system CPU seconds of every process whose command line satisfies `match`, by pid."""
    tick = os.sysconf("SC_CLK_TCK")
    seconds = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if not match(cmdline):
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            seconds[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            continue
    return seconds


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two samples by the processes alive at the second one."""
    return sum(value - before.get(pid, 0.0) for pid, value in after.items())


def wait_for(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gunicorn exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("gunicorn did not start")



def verify(contacts: int, sids: list[str]) -> dict:
    """Exactly once, over every contact that texted YES then STOP (warm-up included)."""
    from consent.models import Consent, ConsentEvent, ConsentStatus, EventKind, InboundReceipt, Message
    from consent.verification import verify_chain

    receipts = InboundReceipt.objects.filter(provider_message_id__in=sids)
    checks = {
        "receipts": receipts.count(),
        "receipts_applied": receipts.filter(applied_at__isnull=False, outcome="applied").count(),
        "receipts_unapplied_anywhere": InboundReceipt.objects.filter(applied_at__isnull=True).count(),
        "inbound_messages": Message.objects.filter(direction=Message.Direction.INBOUND, provider_message_id__in=sids).count(),
        "confirmed_events": ConsentEvent.objects.filter(kind=EventKind.CONFIRMED).count(),
        "revoked_events": ConsentEvent.objects.filter(kind=EventKind.REVOKED).count(),
        "confirmed_replies": Message.objects.filter(kind=Message.Kind.CONFIRMED_REPLY).count(),
        "stop_replies": Message.objects.filter(kind=Message.Kind.STOP_REPLY).count(),
        "consents_revoked": Consent.objects.filter(status=ConsentStatus.REVOKED).count(),
        "chain_ok": verify_chain().ok,
    }
    # A number whose STOP arrived before its YES (the open-loop generator behind schedule sends both at
    # once) is applied in arrival order: revoked, then "nothing pending". Arrival order is the receipt id.
    first = {}
    for sender, intent in receipts.order_by("id").values_list("sender", "intent"):
        first.setdefault(sender, intent)
    stop_first = sum(1 for intent in first.values() if intent == "stop")
    checks["stop_arrived_first"] = stop_first
    checks["nothing_pending_replies"] = Message.objects.filter(kind=Message.Kind.NOTHING_PENDING_REPLY).count()
    unique = len(set(sids))
    expected = {"receipts": unique, "receipts_applied": unique, "receipts_unapplied_anywhere": 0,
                "inbound_messages": unique, "confirmed_events": contacts - stop_first, "revoked_events": contacts,
                "confirmed_replies": contacts - stop_first, "nothing_pending_replies": stop_first,
                "stop_replies": contacts, "consents_revoked": contacts, "chain_ok": True}
    checks["exactly_once"] = all(checks[k] == v for k, v in expected.items())
    checks["expected"] = expected
    return checks


def purge_queue(broker_url: str) -> None:
    import redis

    redis.Redis.from_url(broker_url).delete(QUEUE, APPLY_QUEUE)


def unapplied() -> int:
    from django.db import connection

    from consent.models import InboundReceipt

    count = InboundReceipt.objects.filter(applied_at__isnull=True).count()
    connection.close()
    return count


def wait_applied(timeout: float = 300) -> float:
    """Seconds until no receipt is left unapplied."""
    started = time.perf_counter()
    while unapplied():
        if time.perf_counter() - started > timeout:
            raise SystemExit(f"receipts still unapplied after {timeout}s")
        time.sleep(0.2)
    return round(time.perf_counter() - started, 2)


def compose_worker_cpu_shares() -> int:
    """`cpu_shares` of docker-compose.yml's worker (Docker's default, 1024, when it sets none)."""
    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return int(compose["services"]["worker"].get("cpu_shares", 1024))


def cpu_group(shares: int) -> tuple[Path | None, str]:
    """(a cgroup whose processes get `shares` of the CPU as a Docker container with cpu_shares does, how).

    cgroup v1's cpu controller takes the shares as they are; v2's takes a weight, converted as Docker
    converts them. (None, why) when this machine does not let the benchmark make one."""
    name = f"bench-inbound-apply-{os.getpid()}"
    v1, v2 = Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup")
    try:
        if (v1 / "cpu.shares").exists():
            group = v1 / name
            group.mkdir()
            (group / "cpu.shares").write_text(str(shares))
            return group, f"cgroup v1 cpu.shares={shares}"
        if "cpu" in (v2 / "cgroup.controllers").read_text().split():
            group = v2 / name
            group.mkdir()
            weight = 1 + (shares - 2) * 9999 // 262142
            (group / "cpu.weight").write_text(str(weight))
            return group, f"cgroup v2 cpu.weight={weight} (cpu_shares {shares})"
    except OSError as exc:
        return None, f"none: no cgroup could be made ({exc.strerror})"
    return None, "none: no cgroup cpu controller"


def join_group(group: Path | None):
    """preexec_fn: the child (and every process it forks) joins `group` before it runs."""
    if group is None:
        return None
    return lambda: (group / "cgroup.procs").write_text(str(os.getpid()))


def gunicorn_start(args, port: int, env: dict, app: str) -> subprocess.Popen:
    """The same gunicorn command for the floor and the service."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", app, "-b", f"127.0.0.1:{port}", "-w", str(args.workers),
         "-k", args.worker_class, "--threads", str(args.threads), "--keep-alive", "30", "--log-level", "warning",
         # Spread the load generator's keep-alive connections evenly over the workers.
         "--worker-connections", str(-(-args.concurrency // args.workers) + 1)],
        cwd=ROOT, env=env,
    )
    wait_for(port, proc)
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def latency_figures(seconds: list[float]) -> dict:
    ordered = sorted(seconds)
    return {"p50_ms": round(statistics.median(ordered) * 1000, 2),
            "p99_ms": round(ordered[max(0, int(len(ordered) * 0.99) - 1)] * 1000, 2),
            "max_ms": round(ordered[-1] * 1000, 2)}


async def run_open_loop(port: int, schedule: list[tuple[float, str, bytes]], connections: int) -> dict:
    """Send each request at its instant (seconds from the start), on up to `connections` keep-alive
    connections; the 200's latency and the wall-clock instant each was answered, by sid."""
    queue: asyncio.Queue = asyncio.Queue()
    for item in schedule:
        queue.put_nowait(item)
    answered: dict[str, float] = {}
    latencies: list[float] = []
    late: list[float] = []
    statuses: dict[int, int] = {}
    start = time.perf_counter()

    async def client():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while not queue.empty():
                at, sid, request = queue.get_nowait()
                delay = start + at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    late.append(-delay)
                sent = time.perf_counter()
                writer.write(request)
                status, keep_alive = await _read_response(reader)
                latencies.append(time.perf_counter() - sent)
                answered[sid] = time.time()
                statuses[status] = statuses.get(status, 0) + 1
                if not keep_alive:
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(connections)))
    elapsed = time.perf_counter() - start
    result = {"requests": len(latencies), "seconds": round(elapsed, 3),
              "requests_per_second": round(len(latencies) / elapsed, 1), **latency_figures(latencies),
              "sent_late_p99_ms": round(sorted(late)[max(0, int(len(late) * 0.99) - 1)] * 1000, 2) if late else 0.0,
              "statuses": statuses}
    return result, answered


def applied_latencies(answered: dict[str, float]) -> dict:
    """From each 200 (its wall-clock instant) to its receipt's applied_at."""
    from django.db import connection

    from consent.models import InboundReceipt

    applied = dict(InboundReceipt.objects.filter(provider_message_id__in=list(answered))
                   .values_list("provider_message_id", "applied_at"))
    connection.close()
    delays = [max(0.0, applied[sid].timestamp() - at) for sid, at in answered.items() if applied.get(sid)]
    # A batch marks its rows with one applied_at: how many batches applied the phase, a figure of how well
    # the appliers gathered (a few rows per batch cost the worker several times as much CPU per row).
    batches = len(set(applied.values()) - {None})
    return {"applied": len(delays), **latency_figures(delays), "batches": batches,
            "rows_per_batch": round(len(delays) / batches, 1) if batches else None}


def saturate(port: int, requests: list[bytes], concurrency: int, measured: dict) -> dict:
    """One closed-loop phase with the CPU of every process measured."""
    before = {name: cpu_seconds(match) for name, match in measured.items()}
    own_cpu = time.process_time()
    phase = asyncio.run(run_phase(port, requests, concurrency))
    count = phase["requests"]
    phase["load_generator_cpu_ms_per_request"] = round((time.process_time() - own_cpu) / count * 1000, 2)
    for name, match in measured.items():
        phase[f"{name}_cpu_ms_per_request"] = round(cpu_used(before[name], cpu_seconds(match)) / count * 1000, 2)
    return phase


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=2000, help="contacts of the saturation phases")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=int, default=300, help="webhooks/s of the sustained phase")
    parser.add_argument("--duration", type=int, default=60, help="seconds of the sustained phase")
    parser.add_argument("--sustained-connections", type=int, default=32)
    parser.add_argument("--duplicates", type=float, default=0.1, help="fraction of webhooks delivered twice")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worker-class", default="gthread", help="gunicorn worker class (gthread keeps connections alive)")
    parser.add_argument("--apply-concurrency", type=int, default=2, help="processes of the Celery worker that applies")
    parser.add_argument("--apply-nice", type=int, default=0,
                        help="run the applying worker at this CPU niceness as well (0: none)")
    parser.add_argument("--apply-cpu-shares", type=int, default=None,
                        help="CPU shares of the applying worker's cgroup (default: docker-compose.yml's worker "
                             "cpu_shares; 0: no cgroup, as one process among the others)")
    store_arguments(parser, "bench_inbound")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--output", default=str(RESULTS), help="where to write the JSON results")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    load_before = os.getloadavg()
    port = free_port()
    print(f"database {args.database_url}: recreating and migrating", flush=True)
    env = migrated_environment(args, port)
    os.environ.update(env)
    started = time.perf_counter()
    warm = args.workers * args.threads * 8  # contacts whose YES and STOP warm every worker up first
    sustained = args.rate * args.duration // 2  # each texts YES then STOP
    total = args.contacts + sustained + warm
    setup_data(total)
    print(f"{total} pending consents created in {time.perf_counter() - started:.1f}s", flush=True)
    db_name = urllib.parse.urlsplit(args.database_url).path.lstrip("/")
    run = int(time.time())
    measured = {
        "web": lambda cmd: "gunicorn" in cmd and f"127.0.0.1:{port}" in cmd,
        "db": lambda cmd: cmd.startswith("postgres: ") and f" {db_name} " in cmd,
        "redis": lambda cmd: cmd.startswith("redis-server"),
        "worker": lambda cmd: "celery" in cmd and APPLY_QUEUE in cmd,
    }

    def requests_for(prefix: str, first: int, count: int, text: str) -> tuple[list[str], list[bytes]]:
        sids = [f"SM{prefix}{run}{i:08d}" for i in range(first, first + count)]
        return sids, [build_request(port, sid, phone(i), text) for i, sid in zip(range(first, first + count), sids, strict=True)]

    # 1. The floor, alone on the machine.
    from django.db import connection

    from bench.floor.settings import CREATE_TABLE

    with connection.cursor() as cursor:
        cursor.execute(CREATE_TABLE)
    connection.close()
    floor_env = {**env, "DJANGO_SETTINGS_MODULE": "bench.floor.settings"}
    floor = gunicorn_start(args, port, floor_env, "bench.floor.wsgi")
    try:
        asyncio.run(run_phase(port, requests_for("floorwarm", 0, warm * 3, "YES")[1], args.concurrency))
        floor_requests, _ = with_duplicates(requests_for("floor", 0, 2 * args.contacts, "STOP")[1], args.duplicates, rng)
        floor_phase = saturate(port, floor_requests, args.concurrency, {k: measured[k] for k in ("web", "db")})
        print(f"floor: {json.dumps(floor_phase)}", flush=True)
    finally:
        stop(floor)

    # 2. The service: web and the applying worker, with the worker's CPU shares as docker-compose.yml gives them.
    if args.apply_cpu_shares is None:
        args.apply_cpu_shares = compose_worker_cpu_shares()
    group, args.apply_priority = cpu_group(args.apply_cpu_shares) if args.apply_cpu_shares else (None, "none (asked)")
    print(f"applying worker's CPU priority: {args.apply_priority}", flush=True)
    worker = subprocess.Popen(
        [*(["nice", "-n", str(args.apply_nice)] if args.apply_nice else []), sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", APPLY_QUEUE, "--concurrency",
         str(args.apply_concurrency), "--loglevel", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=ROOT, env=env, preexec_fn=join_group(group),
    )
    web = gunicorn_start(args, port, env, "config.wsgi")
    phases, all_sids, duplicates = {}, [], 0
    try:
        # Warm-up on contacts of their own (statements prepared, connections open); a free text warms care.
        first_warm = args.contacts + sustained
        for text in ("YES", "STOP", "hello, is anyone there?"):
            sids, requests = requests_for(f"warm{text[:4]}", first_warm, warm, text)
            all_sids += sids if text != "hello, is anyone there?" else []
            asyncio.run(run_phase(port, requests, args.concurrency))
        wait_applied()
        warm_sids = [f"SMwarmhell{run}{i:08d}" for i in range(first_warm, first_warm + warm)]

        for name, text in (("yes", "YES"), ("stop", "STOP")):
            sids, requests = requests_for(name, 0, args.contacts, text)
            all_sids += sids
            requests, dup = with_duplicates(requests, args.duplicates, rng)
            duplicates += dup
            phases[name] = saturate(port, requests, args.concurrency, measured)
            phases[name]["applied_all_after_s"] = wait_applied()
            print(f"{name:>5}: {json.dumps(phases[name])}", flush=True)

        # Sustained: each contact's YES, and its STOP a second later, at `rate` webhooks/s in all.
        schedule = []
        for k in range(sustained):
            i = args.contacts + k
            at = 2 * k / args.rate
            for text, delay in (("YES", 0.0), ("STOP", 1.0)):
                sid = f"SMsus{text[:1]}{run}{i:08d}"
                schedule.append((at + delay, sid, build_request(port, sid, phone(i), text)))
        schedule.sort(key=lambda item: item[0])
        all_sids += [sid for _, sid, _ in schedule]
        before = {name: cpu_seconds(match) for name, match in measured.items()}
        phase, answered = asyncio.run(run_open_loop(port, schedule, args.sustained_connections))
        for name, match in measured.items():
            phase[f"{name}_cpu_ms_per_request"] = round(cpu_used(before[name], cpu_seconds(match)) / phase["requests"] * 1000, 2)
        phase["applied_all_after_s"] = wait_applied()
        phase["to_applied"] = applied_latencies(answered)
        phases["sustained"] = phase
        print(f"sustained: {json.dumps(phase)}", flush=True)
    finally:
        stop(web)
        stop(worker)
        purge_queue(args.broker_url)
        if group is not None:
            try:
                group.rmdir()
            except OSError:  # a process of the worker's still there: left, harmless
                pass

    saturation = [phases["yes"], phases["stop"]]
    accepted = round(sum(p["requests"] for p in saturation) / sum(p["seconds"] for p in saturation), 1)
    checks = verify(args.contacts + sustained + warm, all_sids)
    from consent.models import InboundReceipt

    checks["care_warmup_applied"] = InboundReceipt.objects.filter(provider_message_id__in=warm_sids,
                                                                  applied_at__isnull=False).count() == warm
    targets = {
        "accepted_per_second >= 600": accepted >= 600,
        "accepted / floor >= 0.6": accepted / floor_phase["requests_per_second"] >= 0.6,
        "sustained 200 p99 < 50 ms": phases["sustained"]["p99_ms"] < 50,
        "sustained applied p99 < 2 s": phases["sustained"]["to_applied"]["p99_ms"] < 2000,
        "exactly once": checks["exactly_once"],
    }
    result = {
        "benchmark": "inbound signed Twilio webhooks (YES then STOP): intake under gunicorn, applied by a Celery "
                     "worker, PostgreSQL + Redis; the floor in the same run",
        "machine": {"cpus": os.cpu_count(), "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "config": {k: v for k, v in vars(args).items() if k not in ("database_url", "broker_url", "redis_url", "output")},
        "gunicorn": f"-k {args.worker_class} -w {args.workers} --threads {args.threads} (floor and service)",
        "duplicates_sent": duplicates,
        "floor": floor_phase,
        "phases": phases,
        "summary": {
            "accepted_per_second": accepted,
            "floor_per_second": floor_phase["requests_per_second"],
            "ratio_to_floor": round(accepted / floor_phase["requests_per_second"], 3),
            "saturation_p50_ms": max(p["p50_ms"] for p in saturation),
            "saturation_p99_ms": max(p["p99_ms"] for p in saturation),
            "sustained_rate": phases["sustained"]["requests_per_second"],
            "sustained_p50_ms": phases["sustained"]["p50_ms"],
            "sustained_p99_ms": phases["sustained"]["p99_ms"],
            "sustained_applied_p50_ms": phases["sustained"]["to_applied"]["p50_ms"],
            "sustained_applied_p99_ms": phases["sustained"]["to_applied"]["p99_ms"],
            "sustained_rows_per_batch": phases["sustained"]["to_applied"]["rows_per_batch"],
        },
        "targets": targets,
        "checks": checks,
    }
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["summary"]), flush=True)
    print(f"targets: {json.dumps(targets)}")
    print(f"exactly once: {checks['exactly_once']} ({json.dumps({k: v for k, v in checks.items() if k != 'expected'})})")
    print(f"written to {output}")
    if not checks["exactly_once"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
