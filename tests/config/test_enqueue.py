"""Tasks are queued by name: a process that never imported a task module still finds the task."""

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import transaction

from config import enqueue

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import sys, django
django.setup()
from config.enqueue import task_named
assert "consent.tasks" not in sys.modules and "broadcasts.tasks" not in sys.modules
print(task_named("consent.tasks.message_deliver_task").name, task_named("broadcasts.tasks.broadcast_launch_task").name)
"""


def test_a_web_process_finds_tasks_it_never_imported():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["consent.tasks.message_deliver_task", "broadcasts.tasks.broadcast_launch_task"]


@pytest.mark.django_db(transaction=True)
def test_enqueue_on_commit_sends_only_after_the_commit(monkeypatch):
    sent = []
    task = enqueue.task_named("broadcasts.tasks.broadcast_launch_task")
    monkeypatch.setattr(task, "apply_async", lambda args, **options: sent.append((args, options)))
    with transaction.atomic():
        enqueue.enqueue_on_commit("broadcasts.tasks.broadcast_launch_task", 7, countdown=3)
        assert sent == []
    assert sent == [((7,), {"countdown": 3})]


@pytest.fixture
def sent(monkeypatch):
    """What apply_async was called with, per task name, and through which producer."""
    calls = []
    for name in ("broadcasts.tasks.broadcast_launch_task", "consent.tasks.message_deliver_task"):
        task = enqueue.task_named(name)
        monkeypatch.setattr(task, "apply_async",
                            lambda args, _name=name, producer=None, **options: calls.append((_name, args, options, producer)))
    return calls


@pytest.mark.django_db(transaction=True)
def test_tasks_queued_on_commit_inside_publishes_together_go_together_at_its_end(sent):
    with enqueue.publishes_together():
        with transaction.atomic():
            enqueue.enqueue_on_commit("consent.tasks.message_deliver_task", 1, retry=False, robust=True)
            enqueue.enqueue_on_commit("broadcasts.tasks.broadcast_launch_task", 2)
        with transaction.atomic():
            enqueue.enqueue_on_commit("consent.tasks.message_deliver_task", 3)
        assert sent == []  # committed, set aside until the block ends
    assert [(name, args, options) for name, args, options, _ in sent] == [
        ("consent.tasks.message_deliver_task", (1,), {"retry": False}),
        ("broadcasts.tasks.broadcast_launch_task", (2,), {}),
        ("consent.tasks.message_deliver_task", (3,), {}),
    ]
    producers = {producer for *_, producer in sent}
    assert len(producers) == 1 and None not in producers  # one producer, so one batch


@pytest.mark.django_db(transaction=True)
def test_publishes_together_sends_nothing_that_rolled_back(sent):
    with enqueue.publishes_together():
        with transaction.atomic():
            enqueue.enqueue_on_commit("consent.tasks.message_deliver_task", 1)
            try:
                with transaction.atomic():
                    enqueue.enqueue_on_commit("consent.tasks.message_deliver_task", 2)
                    raise ValueError
            except ValueError:
                pass
        with pytest.raises(ValueError), transaction.atomic():
            enqueue.enqueue_on_commit("consent.tasks.message_deliver_task", 3)
            raise ValueError
    assert [args for _, args, *_ in sent] == [(1,)]


@pytest.mark.django_db(transaction=True)
def test_publishes_together_still_sends_what_committed_when_the_block_raises(sent):
    with pytest.raises(RuntimeError), enqueue.publishes_together():
        with transaction.atomic():
            enqueue.enqueue_on_commit("consent.tasks.message_deliver_task", 1)
        raise RuntimeError
    assert [args for _, args, *_ in sent] == [(1,)]


@pytest.mark.django_db(transaction=True)
def test_publishes_together_inside_a_transaction_leaves_the_commit_to_send(sent):
    with transaction.atomic():
        with enqueue.publishes_together():
            enqueue.enqueue_on_commit("consent.tasks.message_deliver_task", 1)
        assert sent == []
    assert [(args, producer) for _, args, _, producer in sent] == [((1,), None)]  # sent by the commit, alone


@pytest.mark.django_db(transaction=True)
def test_a_broker_failure_is_logged_for_robust_tasks_and_raised_for_others(monkeypatch):
    task = enqueue.task_named("consent.tasks.message_deliver_task")

    def broken(args, **options):
        raise ConnectionError("broker gone")

    monkeypatch.setattr(task, "apply_async", broken)
    logged = []
    monkeypatch.setattr(enqueue.logger, "exception", lambda message, *args: logged.append(message % args))
    with enqueue.publishes_together(), transaction.atomic():
        enqueue.enqueue_on_commit("consent.tasks.message_deliver_task", 1, robust=True)
    assert logged == ["1 task(s) queued together could not be sent (consent.tasks.message_deliver_task)"]
    with pytest.raises(ConnectionError), enqueue.publishes_together(), transaction.atomic():
        enqueue.enqueue_on_commit("consent.tasks.message_deliver_task", 2)


BROKER = os.environ.get("CELERY_BROKER_URL", "")


@contextlib.contextmanager
def _finally(undo):
    try:
        yield
    finally:
        undo()


@pytest.mark.skipif(not BROKER.startswith("redis://"), reason="needs a Redis broker (CELERY_BROKER_URL)")
@pytest.mark.django_db(transaction=True)
def test_publishes_together_hands_every_task_to_the_redis_broker_in_order():
    from kombu import Connection

    from config.celery import app

    queue_name = "test-enqueue-together"
    eager, app.conf.task_always_eager = app.conf.task_always_eager, False
    with Connection(BROKER) as conn, conn.SimpleQueue(queue_name) as queue, _finally(
            lambda: setattr(app.conf, "task_always_eager", eager)):
        queue.clear()
        with enqueue.publishes_together():
            for number in range(250):
                with transaction.atomic():
                    enqueue.enqueue_on_commit("consent.tasks.message_deliver_task", number, queue=queue_name,
                                              retry=False, robust=True)
        received = []
        for _ in range(250):
            message = queue.get(timeout=2)
            received.append(message.payload[0][0])  # protocol 2 body: (args, kwargs, embed)
            message.ack()
        assert received == list(range(250))
