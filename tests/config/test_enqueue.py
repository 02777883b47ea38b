"""Tasks are queued by name: a process that never imported a task module still finds the task."""

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
