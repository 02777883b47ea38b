#!/usr/bin/env python
"""Ledger benchmark: concurrent double opt-ins on PostgreSQL, all appending to one hash chain.

    .venv/bin/python bench/ledger.py                      # 4 processes x 500 opt-ins (request + confirm)
    .venv/bin/python bench/ledger.py --processes 8 --per-process 200

Each opt-in is three ledger events (requested, confirmation_sent, confirmed) in three
transactions, with the prompt sent through the console provider. Prints opt-ins/s and
events/s, then verifies the whole chain; writes bench/results/ledger.json.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/bench_ledger"

WORKER = """
import os, sys, time, django
django.setup()
from consent import services
from consent.models import Source, Topic
topic = Topic.objects.get(slug="bench")
base, count = int(sys.argv[1]), int(sys.argv[2])
for i in range(count):
    r = services.optin_request(phone=f"+336{base + i:08d}", topic=topic, channel="sms", source=Source.API,
                               evidence={"ip": "203.0.113.1", "user_agent": "bench"})
    services.optin_confirm_by_token(token=r.token, source=Source.WEB_FORM)
"""


def env_for(url: str) -> dict:
    return {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings.worker_test",
            "CELERY_TASK_ALWAYS_EAGER": "1", "PYTHONPATH": str(ROOT), "LOG_LEVEL": "WARNING"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--per-process", type=int, default=500)
    args = parser.parse_args()

    import psycopg

    admin_url = args.database_url.rsplit("/", 1)[0] + "/postgres"
    name = args.database_url.rsplit("/", 1)[1]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    env = env_for(args.database_url)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run([sys.executable, "-c", "import django; django.setup(); from consent import services; "
                    "services.topic_create(slug='bench', name='Bench', keywords=['BENCH'], consent_text='c', "
                    "confirmation_message='Reply YES', help_message='h', consent_ttl_days=365)"],
                   cwd=ROOT, env=env, check=True)

    started = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(n * 1_000_000), str(args.per_process)], cwd=ROOT,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for n in range(args.processes)]
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode:
            print(err[-3000:], file=sys.stderr)
            return 1
    elapsed = time.perf_counter() - started

    verify = subprocess.run([sys.executable, "-c", "import django, json, time; django.setup(); "
                             "from consent.verification import verify_chain; t=time.perf_counter(); r=verify_chain(); "
                             "print(json.dumps({'ok': r.ok, 'events': r.events, 'seconds': time.perf_counter()-t}))"],
                            cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    verification = json.loads(verify.stdout.strip().splitlines()[-1])
    optins = args.processes * args.per_process
    result = {
        "processes": args.processes,
        "optins": optins,
        "events": verification["events"],
        "seconds": round(elapsed, 2),
        "optins_per_second": round(optins / elapsed, 1),
        "events_per_second": round(verification["events"] / elapsed, 1),
        "chain_ok": verification["ok"],
        "verify_seconds": round(verification["seconds"], 3),
    }
    print(json.dumps(result, indent=2))
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "ledger.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0 if verification["ok"] and verification["events"] == optins * 3 else 1


if __name__ == "__main__":
    sys.exit(main())
