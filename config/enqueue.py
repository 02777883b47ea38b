"""Queue a Celery task by name, now or once the transaction commits.

Action modules queue work through here and never import task modules, which import them: no cycle.
"""

import contextlib
import logging
from contextvars import ContextVar

from django.db import connection, transaction

from config.celery import app

logger = logging.getLogger(__name__)

# Within `publishes_together`: the tasks committed so far, published at the block's end.
_together: ContextVar[list | None] = ContextVar("publishes_together", default=None)


def task_named(name: str):
    """The registered task `name` (e.g. "consent.tasks.message_deliver_task")."""
    if name not in app.tasks:
        # A process that has not run Celery's autodiscovery yet (web, management commands) runs it now.
        app.loader.import_default_modules()
    return app.tasks[name]


def enqueue(name: str, *args, **options):
    """Send task `name` with positional `args`; `options` go to `apply_async`."""
    return task_named(name).apply_async(args, **options)


def enqueue_on_commit(name: str, *args, robust: bool = False, **options) -> None:
    """Send task `name` once the surrounding transaction commits (at once outside one).

    Inside `publishes_together`, the commit only puts it aside: it is sent with the others at the block's end.
    """
    together = _together.get()
    if together is not None:
        transaction.on_commit(lambda: together.append((name, args, options, robust)))
        return

    def send():
        enqueue(name, *args, **options)

    send.__qualname__ = f"enqueue({name})"  # what a robust callback's failure is logged as
    transaction.on_commit(send, robust=robust)


@contextlib.contextmanager
def publishes_together():
    """Tasks queued on commit inside the block go to the broker together as it ends, in one round trip.

    For a worker whose transactions each queue many tasks (an inbound batch: one reply per message): one
    `apply_async` costs about 0.7 ms of CPU, much of it a new Redis client and a round trip per message;
    through one producer's batch (kombu's public `Producer.batch`, one pipeline) about 0.35 ms
    (bench/enqueue.py). Each task is still its own message, with its own retries. Only what
    committed is sent (a rolled-back savepoint's tasks are dropped, as with `transaction.on_commit`).
    Entered inside a transaction it changes nothing: that transaction's commit is not the block's to see.
    Publishing failures of robust tasks are logged (the upkeep hands their messages over again later);
    any other is raised.
    """
    if _together.get() is not None or connection.in_atomic_block:
        yield
        return
    pending: list = []
    token = _together.set(pending)
    failed = True
    try:
        yield
        failed = False
    finally:
        _together.reset(token)
        if pending:
            _publish(pending, raising=not failed)


def _publish(pending: list, *, raising: bool) -> None:
    try:
        with app.producer_or_acquire() as producer, producer.batch():
            for name, args, options, _robust in pending:
                task_named(name).apply_async(args, producer=producer, **options)
    except Exception:
        robust = all(item[3] for item in pending)
        logger.exception("%d task(s) queued together could not be sent (%s)", len(pending),
                         ", ".join(sorted({item[0] for item in pending})))
        if raising and not robust:
            raise
