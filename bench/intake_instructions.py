"""Instructions per inbound webhook in the web process, counted by valgrind's callgrind (PostgreSQL + Redis).

    .venv/bin/python bench/intake_instructions.py [--webhooks 300] [--warmup 150]
        [--database-url postgres://...] [--redis-url redis://...] [--broker-url redis://...]

The machine's speed drifts by ±20 % between runs, and on some days by half: CPU seconds of one run
cannot be set beside another's. Instructions can: callgrind counts the same total for the same code,
inputs and environment whatever else the machine does. This counts what the web process executes
for one signed Twilio YES or STOP (production settings and middleware, the signature, the parse,
the intake record, its INSERT and both Redis calls), not what the database or Redis do, nor the
kernel's time in system calls.

One process is run twice under callgrind through Django's WSGI handler (no gunicorn, no sockets of
its own). Both runs build the same `--warmup` + `--webhooks` signed requests; one then answers only the
warm-up (imports, first statements, connections), the other all of them. The difference, divided by
`--webhooks`, is the figure: building and signing the requests is not in it. Every webhook
has a sender of its own, so the phone-number cache never hits (as for a number's first message).
Needs `valgrind` (Debian's package). Written to bench/results/intake_instructions.json.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results" / "intake_instructions.json"
BASE_URL = "http://127.0.0.1:8000"
PATH = "/webhooks/twilio/inbound/"


def drive(built: int, answered: int) -> None:
    """In this process: `built` signed webhooks built, then the first `answered` of them through the WSGI handler.

    Both runs build as many, so that the difference between them is the answering alone."""
    import django

    django.setup()
    from django.core.wsgi import get_wsgi_application

    from bench.inbound import AUTH_TOKEN, phone, twilio_form
    from consent.signatures import twilio_signature

    application = get_wsgi_application()
    run = secrets.token_hex(4)
    statuses: dict[str, int] = {}

    def start_response(status, headers, exc_info=None):
        statuses[status] = statuses.get(status, 0) + 1

    def environ(i: int) -> dict:
        form = twilio_form(f"SM{run}{i:08d}", phone(i), "STOP" if i % 2 else "YES")
        body = urllib.parse.urlencode(form).encode()
        return {"REQUEST_METHOD": "POST", "PATH_INFO": PATH, "SCRIPT_NAME": "", "QUERY_STRING": "",
                "CONTENT_TYPE": "application/x-www-form-urlencoded", "CONTENT_LENGTH": str(len(body)),
                "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "HTTP_HOST": "127.0.0.1:8000",
                "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http",
                "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": True,
                "wsgi.run_once": False, "HTTP_USER_AGENT": "TwilioProxy/1.1",
                "HTTP_X_TWILIO_SIGNATURE": twilio_signature(AUTH_TOKEN, BASE_URL + PATH, form)}

    requests = [environ(i) for i in range(built)]
    for request in requests[:answered]:
        response = application(request, start_response)
        b"".join(response)
        response.close()
    if statuses != {"200 OK": answered}:
        raise SystemExit(f"not every webhook was answered 200: {statuses}")
    print(json.dumps({"built": built, "answered": answered}))


def callgrind_total(env: dict, built: int, answered: int) -> int:
    import redis

    redis.Redis.from_url(env["REDIS_URL"], socket_timeout=5).flushdb()  # the trigger key: unset in both runs
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "callgrind.out"
        result = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, __file__,
             "--drive", str(built), str(answered)],
            env=env, capture_output=True, text=True, timeout=1800)
        if result.returncode != 0:
            raise SystemExit(f"callgrind run failed:\n{result.stderr[-3000:]}")
        found = re.search(r"Collected : (\d+)", result.stderr)
        if not found:
            raise SystemExit(f"callgrind printed no total:\n{result.stderr[-3000:]}")
        return int(found.group(1))


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--drive":
        drive(int(sys.argv[2]), int(sys.argv[3]))
        return
    from bench.inbound import migrated_environment, store_arguments

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--webhooks", type=int, default=300, help="webhooks counted (the difference of the two runs)")
    parser.add_argument("--warmup", type=int, default=150, help="webhooks before them, in both runs")
    store_arguments(parser, "bench_intake_instructions")
    parser.add_argument("--output", default=str(RESULTS), help="where to write the JSON results")
    args = parser.parse_args()

    env = migrated_environment(args, 8000)
    env["PUBLIC_BASE_URL"] = BASE_URL
    started = time.monotonic()
    built = args.warmup + args.webhooks
    warm = callgrind_total(env, built, args.warmup)
    counted = callgrind_total(env, built, built)
    per_webhook = (counted - warm) / args.webhooks
    import redis  # for the parser in use: hiredis or redis-py's own

    results = {
        "benchmark": "instructions the web process executes per signed Twilio inbound webhook (callgrind, "
                     "production settings, WSGI handler, PostgreSQL + Redis)",
        "config": {"webhooks": args.webhooks, "warmup": args.warmup, "python": sys.version.split()[0],
                   "redis_parser": "hiredis" if redis.utils.HIREDIS_AVAILABLE else "redis-py"},
        "instructions_warmup_run": warm,
        "instructions_counted_run": counted,
        "instructions_per_webhook": round(per_webhook),
        "seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps(results, indent=2))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
