"""Publishing tasks to the Redis broker: one `apply_async` each, as a commit hook sends them, against
`config.enqueue.publishes_together` (one producer, kombu's publish batch: one pipeline).

    flock /tmp/bench.lock .venv/bin/python bench/enqueue.py [--messages 100] [--rounds 20] [--broker-url redis://...]

Each round queues `--messages` message_deliver_task messages (the inbound applier's batch: a reply per
message) on commit, one transaction each, then reads back that every one arrived. Reports the CPU of this
process per message for each way, alternating the two ways round by round, and writes
bench/results/enqueue.json. The messages go to a queue of their own that no worker reads.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
QUEUE = "bench-enqueue"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100, help="messages per round (one applier batch)")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--broker-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "enqueue.json"))
    args = parser.parse_args()
    os.environ.update(DJANGO_SETTINGS_MODULE="config.settings.local", CELERY_BROKER_URL=args.broker_url,
                      DATABASE_URL=os.environ.get("DATABASE_URL", "sqlite:////tmp/bench-enqueue.sqlite3"))
    import django

    django.setup()
    import redis
    from django.db import transaction

    from config.celery import app
    from config.enqueue import enqueue_on_commit, publishes_together

    app.conf.task_always_eager = False
    client = redis.Redis.from_url(args.broker_url)

    def one_round(together: bool) -> float:
        client.delete(QUEUE)
        started = time.process_time()
        if together:
            with publishes_together():
                for number in range(args.messages):
                    with transaction.atomic():
                        enqueue_on_commit("consent.tasks.message_deliver_task", number, queue=QUEUE, retry=False,
                                          robust=True)
        else:
            for number in range(args.messages):
                with transaction.atomic():
                    enqueue_on_commit("consent.tasks.message_deliver_task", number, queue=QUEUE, retry=False,
                                      robust=True)
        spent = time.process_time() - started
        arrived = client.llen(QUEUE)
        if arrived != args.messages:
            raise SystemExit(f"{arrived} of {args.messages} messages arrived")
        return spent / args.messages

    for together in (False, True):  # warm both
        one_round(together)
    figures: dict[str, list[float]] = {"one_by_one": [], "together": []}
    for _ in range(args.rounds):
        figures["one_by_one"].append(one_round(False))
        figures["together"].append(one_round(True))
    client.delete(QUEUE)
    medians = {way: statistics.median(values) * 1e6 for way, values in figures.items()}
    result = {
        "benchmark": "publishing message_deliver_task on commit to the Redis broker, one by one vs publishes_together",
        "machine": {"cpus": os.cpu_count(), "load_average": list(os.getloadavg())},
        "config": {"messages": args.messages, "rounds": args.rounds},
        "cpu_us_per_message": {way: round(value, 1) for way, value in medians.items()},
        "each_round_us": {way: [round(v * 1e6, 1) for v in values] for way, values in figures.items()},
        "together_over_one_by_one": round(medians["together"] / medians["one_by_one"], 2),
    }
    print(json.dumps({k: result[k] for k in ("cpu_us_per_message", "together_over_one_by_one")}, indent=2))
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
