"""Queue a Celery task by name, now or once the transaction commits.

Action modules queue work through here and never import task modules, which import them: no cycle.
"""

from django.db import transaction

from config.celery import app


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
    """Send task `name` once the surrounding transaction commits (at once outside one)."""

    def send():
        enqueue(name, *args, **options)

    send.__qualname__ = f"enqueue({name})"  # what a robust callback's failure is logged as
    transaction.on_commit(send, robust=robust)
