"""Inbound webhook benchmark: signed Twilio YES and STOP webhooks against gunicorn on PostgreSQL.

    .venv/bin/python bench/inbound.py [--contacts 2000] [--concurrency 16] [--duplicates 0.1]
                                      [--workers 4] [--threads 2] [--database-url postgres://...]

What it does:
1. Creates a fresh PostgreSQL database (default `bench_inbound` on 127.0.0.1:5432), migrates it,
   and gives N contacts a pending SMS consent (double opt-in, step one) through the services.
2. Starts `gunicorn config.wsgi` (production settings, console providers, Celery publishing to a
   Redis queue of its own that no worker consumes, so the web side alone is measured).
3. Warms every worker up on contacts of its own (YES, STOP, a free text; not measured). Then,
   from one asyncio load generator on loopback with keep-alive connections, sends every contact a
   signed "YES" (phase 1) and then a signed "STOP" (phase 2); a fraction of webhooks is sent twice,
   as providers redeliver, on different connections.
4. Checks every one was applied exactly once (one inbound message per provider id, N confirmed and
   N revoked events, one reply each, an intact ledger chain) and prints requests/s, p50 and p99,
   also written to bench/results/inbound.json.
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
QUEUE = "bench-inbound"
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


def setup_data(n: int) -> int:
    """N contacts with a pending SMS consent; returns the topic id. Runs in this process."""
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


def build_request(port: int, sid: str, sender: str, body: str) -> bytes:
    from consent.signatures import twilio_signature

    path = "/webhooks/twilio/inbound/"
    form = {
        "ToCountry": "US", "SmsMessageSid": sid, "NumMedia": "0", "SmsSid": sid, "SmsStatus": "received",
        "Body": body, "FromCountry": "US", "To": "+14155550199", "NumSegments": "1", "MessageSid": sid,
        "AccountSid": "AC00000000000000000000000000000000", "From": sender, "ApiVersion": "2010-04-01",
    }
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


def verify(n: int, warm: int, sids: list[str]) -> dict:
    from consent.models import ConsentEvent, ConsentStatus, EventKind, Message
    from consent.verification import verify_chain

    inbound = Message.objects.filter(direction=Message.Direction.INBOUND, provider_message_id__in=sids)
    checks = {
        "inbound_messages": inbound.count(),
        "confirmed_events": ConsentEvent.objects.filter(kind=EventKind.CONFIRMED).count(),
        "revoked_events": ConsentEvent.objects.filter(kind=EventKind.REVOKED).count(),
        "confirmed_replies": Message.objects.filter(kind=Message.Kind.CONFIRMED_REPLY).count(),
        "stop_replies": Message.objects.filter(kind=Message.Kind.STOP_REPLY).count(),
        "consents_revoked": __import__("consent.models").models.Consent.objects.filter(status=ConsentStatus.REVOKED).count(),
        "chain_ok": verify_chain().ok,
    }
    expected = {"inbound_messages": 2 * n, "confirmed_events": n + warm, "revoked_events": n + warm,
                "confirmed_replies": n + warm, "stop_replies": n + warm, "consents_revoked": n + warm, "chain_ok": True}
    checks["exactly_once"] = all(checks[k] == v for k, v in expected.items())
    checks["expected"] = expected
    return checks


def purge_queue(broker_url: str) -> None:
    import redis

    redis.Redis.from_url(broker_url).delete(QUEUE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duplicates", type=float, default=0.1, help="fraction of webhooks delivered twice")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worker-class", default="gthread", help="gunicorn worker class (gthread keeps connections alive)")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/bench_inbound")
    parser.add_argument("--broker-url", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--output", default=str(RESULTS), help="where to write the JSON results")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    load_before = os.getloadavg()
    port = free_port()
    env = environment(args, port)
    os.environ.update(env)

    print(f"database {args.database_url}: recreating and migrating", flush=True)
    recreate_database(args.database_url)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    started = time.perf_counter()
    warm = args.workers * args.threads * 8  # contacts whose YES and STOP warm every worker up first
    setup_data(args.contacts + warm)
    print(f"{args.contacts} pending consents created in {time.perf_counter() - started:.1f}s", flush=True)

    gunicorn = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi", "-b", f"127.0.0.1:{port}", "-w", str(args.workers),
         "-k", args.worker_class, "--threads", str(args.threads), "--keep-alive", "30", "--log-level", "warning",
         # Spread the load generator's keep-alive connections evenly over the workers.
         "--worker-connections", str(-(-args.concurrency // args.workers) + 1)],
        cwd=ROOT, env=env,
    )
    try:
        wait_for(port, gunicorn)
        run = int(time.time())
        # Warm-up on contacts of their own: every worker runs the measured path (statements prepared,
        # connections open) before the clock starts; a text that is no keyword warms customer care.
        for text in ("YES", "STOP", "hello, is anyone there?"):
            warmup = [build_request(port, f"SMwarm{text[:4]}{run}{i:06d}", phone(args.contacts + i), text)
                      for i in range(warm)]
            asyncio.run(run_phase(port, warmup, args.concurrency))

        db_name = urllib.parse.urlsplit(args.database_url).path.lstrip("/")

        def is_web(cmdline):
            return "gunicorn" in cmdline and f"127.0.0.1:{port}" in cmdline

        def is_db(cmdline):
            return cmdline.startswith("postgres: ") and f" {db_name} " in cmdline

        def is_redis(cmdline):
            return cmdline.startswith("redis-server")

        phases, all_sids, duplicates = {}, [], 0
        for name, text in (("yes", "YES"), ("stop", "STOP")):
            sids = [f"SM{name}{run}{i:08d}" for i in range(args.contacts)]
            all_sids += sids
            requests = [build_request(port, sid, phone(i), text) for i, sid in enumerate(sids)]
            requests, dup = with_duplicates(requests, args.duplicates, rng)
            duplicates += dup
            web_cpu, db_cpu, redis_cpu = cpu_seconds(is_web), cpu_seconds(is_db), cpu_seconds(is_redis)
            own_cpu = time.process_time()
            phases[name] = asyncio.run(run_phase(port, requests, args.concurrency))
            count = phases[name]["requests"]
            phases[name]["load_generator_cpu_ms_per_request"] = round((time.process_time() - own_cpu) / count * 1000, 2)
            phases[name]["redis_cpu_ms_per_request"] = round(cpu_used(redis_cpu, cpu_seconds(is_redis)) / count * 1000, 2)
            phases[name]["web_cpu_ms_per_request"] = round(cpu_used(web_cpu, cpu_seconds(is_web)) / count * 1000, 2)
            phases[name]["db_cpu_ms_per_request"] = round(cpu_used(db_cpu, cpu_seconds(is_db)) / count * 1000, 2)
            print(f"{name:>5}: {json.dumps(phases[name])}", flush=True)
    finally:
        gunicorn.terminate()
        gunicorn.wait(timeout=30)
        purge_queue(args.broker_url)

    total_requests = sum(p["requests"] for p in phases.values())
    total_seconds = sum(p["seconds"] for p in phases.values())
    checks = verify(args.contacts, warm, all_sids)
    result = {
        "benchmark": "inbound signed Twilio webhooks (YES then STOP), gunicorn + PostgreSQL",
        "machine": {"cpus": os.cpu_count(), "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "config": {k: v for k, v in vars(args).items() if k not in ("database_url", "broker_url", "redis_url", "output")},
        "gunicorn": f"-k {args.worker_class} -w {args.workers} --threads {args.threads}",
        "duplicates_sent": duplicates,
        "phases": phases,
        "total": {
            "requests": total_requests,
            "requests_per_second": round(total_requests / total_seconds, 1),
            "p50_ms": max(p["p50_ms"] for p in phases.values()),
            "p99_ms": max(p["p99_ms"] for p in phases.values()),
        },
        "checks": checks,
    }
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["total"]), flush=True)
    print(f"exactly once: {checks['exactly_once']} ({json.dumps({k: v for k, v in checks.items() if k != 'expected'})})")
    print(f"written to {output}")
    if not checks["exactly_once"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
