"""The floor sender for bench/broadcast.py: one process of the minimal sender the product is held against.

    python -m bench.floor_sender --broadcast 12 --part 0 --parts 2 --concurrency 128 --body "Hi Ada, 20% off today."

It streams the delivery ids of one broadcast (its share: id mod parts == part) and their contacts'
numbers from broadcasts_delivery through the ORM's server-side cursor, and makes one provider POST
for each with the product's client (TwilioProvider.from_settings(shared=False), one per sender
thread, as broadcasts/sending.py builds it), on a ThreadPoolExecutor of `--concurrency` threads
given a chunk of rows at a time.
No claim, no consent gate, no quiet hours, no rendering per message, no row is written.

Protocol with the parent, one line each on stdout: `ready` once Django is set up and the database
connected; then it waits for a line on stdin (the start, given to every process at once) and
finally prints one JSON line: sent, failed, epoch seconds of its start and of its last reply, its
own CPU seconds over the send and its peak RSS. An empty stdin (the parent gone) ends it.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait

CHUNK = 1000  # rows fetched and handed to the sender threads at a time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--broadcast", type=int, required=True)
    parser.add_argument("--part", type=int, required=True)
    parser.add_argument("--parts", type=int, required=True)
    parser.add_argument("--concurrency", type=int, required=True, help="provider calls in flight (sender threads)")
    parser.add_argument("--body", required=True, help="the message text (the broadcast's, rendered once)")
    args = parser.parse_args()

    import django

    django.setup()
    from django.db import connection
    from django.db.models import F
    from django.db.models.functions import Mod

    from broadcasts.models import Delivery
    from consent.webhooks.references import DELIVERY, twilio_status_callback
    from messaging.providers import OutgoingMessage, ProviderError
    from messaging.providers.twilio import TwilioProvider

    connection.ensure_connection()
    rows = (Delivery.objects.filter(broadcast_id=args.broadcast).annotate(part=Mod(F("id"), args.parts))
            .filter(part=args.part).order_by("contact_id").values_list("pk", "contact__phone"))

    local = threading.local()

    def send(pk: int, phone: str) -> tuple[bool, float]:
        provider = getattr(local, "provider", None)
        if provider is None:
            provider = local.provider = TwilioProvider.from_settings(shared=False)
        reference = f"{DELIVERY}-{pk}"
        message = OutgoingMessage(to=phone, channel="sms", body=args.body, reference=reference,
                                  status_callback=twilio_status_callback(reference))
        try:
            provider.send(message)
            sent = True
        except ProviderError:
            sent = False
        except Exception:  # counted, never retried: the floor only measures
            sent = False
        return sent, time.time()

    print("ready", flush=True)
    if not sys.stdin.readline():
        return
    started, cpu = time.time(), time.process_time()
    outcomes = []
    with ThreadPoolExecutor(max_workers=args.concurrency, thread_name_prefix="floor-send") as pool:
        # Rows are handed over a chunk at a time (as the product hands over a claim), the next chunk
        # before waiting for the one before: the threads always have work queued, and this thread
        # wakes once per chunk, not once per reply.
        previous, chunk = [], []
        for row in rows.iterator(chunk_size=CHUNK):
            chunk.append(row)
            if len(chunk) == CHUNK:
                submitted = [pool.submit(send, pk, phone) for pk, phone in chunk]
                wait(previous)
                outcomes += [future.result() for future in previous]
                previous, chunk = submitted, []
        submitted = [pool.submit(send, pk, phone) for pk, phone in chunk]
        wait(previous + submitted)
        outcomes += [future.result() for future in previous + submitted]
    cpu = time.process_time() - cpu
    sent = sum(1 for ok, _ in outcomes if ok)
    print(json.dumps({"sent": sent, "failed": len(outcomes) - sent, "started": started,
                      "finished": max((at for _, at in outcomes), default=time.time()), "cpu_seconds": cpu,
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}), flush=True)


if __name__ == "__main__":
    main()
