"""Instructions the inbound applier executes per row, counted by valgrind's callgrind (PostgreSQL + Redis).

    .venv/bin/python bench/apply_instructions.py [--rows 300] [--database-url postgres://...]

Like bench/intake_instructions.py for the web process, this counts what the worker's process executes
(not the database, not Redis), so that two versions can be set side by side on a machine whose speed
drifts: `--rows` contacts with a pending SMS consent (bench/inbound.py's setup), then `--rows` YES and
`--rows` STOP receipts recorded, then one `intake_apply_pending` applies them all in batches of 100,
with callgrind's instrumentation switched on (callgrind_control) for that call only. The setup, imports
and a warm-up batch are not counted. Needs `valgrind` (Debian's package). Written to
bench/results/apply_instructions.json.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results" / "apply_instructions.json"
WARMUP = 100


def drive(rows: int, folder: Path) -> None:
    """In this process (under valgrind): the data, then the counted apply between two signal files."""
    from bench.inbound import phone, setup_data

    setup_data(rows + WARMUP)
    from django.utils import timezone

    from consent.intake import applier, records
    from consent.intake.services import intake_record
    from consent.webhooks.parsers import InboundMessage

    def recorded(i: int, text: str) -> None:
        message = InboundMessage(channel="sms", provider_message_id=f"SMapply{text}{i}", sender=phone(i), text=text)
        intake_record(records.record_of(message, provider="twilio", received_at=timezone.now()))

    for i in range(rows, rows + WARMUP):
        recorded(i, "YES")
    applier.intake_apply_pending()
    for text in ("YES", "STOP"):
        for i in range(rows):
            recorded(i, text)
    (folder / "ready").write_text("1")
    while not (folder / "go").exists():
        time.sleep(0.2)
    applied = applier.intake_apply_pending(max_batches=10**6)
    (folder / "applied").write_text(str(applied))
    while not (folder / "end").exists():
        time.sleep(0.2)


def wait_for(path: Path, proc: subprocess.Popen) -> None:
    while not path.exists():
        if proc.poll() is not None:
            raise SystemExit(f"the counted process ended early ({proc.returncode}): {proc.stderr.read()[-3000:]}")
        time.sleep(0.5)


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--drive":
        drive(int(sys.argv[2]), Path(sys.argv[3]))
        return
    from bench.inbound import migrated_environment, store_arguments

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=300, help="contacts: each sends YES then STOP")
    store_arguments(parser, "bench_apply_instructions")
    parser.add_argument("--output", default=str(RESULTS), help="where to write the JSON results")
    args = parser.parse_args()

    import redis

    env = migrated_environment(args, 8000)
    redis.Redis.from_url(args.redis_url, socket_timeout=5).flushdb()  # the opt-in limits' counters
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        out = folder / "callgrind.out"
        proc = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}", sys.executable,
             __file__, "--drive", str(args.rows), str(folder)],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wait_for(folder / "ready", proc)
        subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], check=True, capture_output=True, timeout=60)
        (folder / "go").write_text("1")
        wait_for(folder / "applied", proc)
        subprocess.run(["callgrind_control", "-i", "off", str(proc.pid)], check=True, capture_output=True, timeout=60)
        (folder / "end").write_text("1")
        _, stderr = proc.communicate(timeout=600)
        applied = int((folder / "applied").read_text())
    found = re.search(r"Collected : (\d+)", stderr)
    if not found or applied != 2 * args.rows:
        raise SystemExit(f"applied {applied} of {2 * args.rows} rows, or callgrind printed no total:\n{stderr[-3000:]}")
    total = int(found.group(1))
    results = {
        "benchmark": "instructions the worker's process executes per applied inbound row (callgrind, production "
                     "settings, PostgreSQL + Redis; half YES confirming a pending consent, half STOP revoking it)",
        "config": {"rows": 2 * args.rows, "batch": 100, "python": sys.version.split()[0]},
        "instructions_counted": total,
        "instructions_per_row": round(total / applied),
        "seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps(results, indent=2))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
