"""Shared fixtures: API clients per role, topics and contacts."""

import pytest
from rest_framework.test import APIClient

pytest_plugins = ["tests.plugins.providers", "tests.plugins.worker", "tests.plugins.fallback_redis"]


@pytest.fixture(autouse=True, scope="session")
def celery_tasks_discovered(django_db_setup):
    """Celery's task discovery runs once, before the first test, not inside whichever test first queues a
    task: its Django fix-up calls django.setup() again, which reconfigures logging under that test (and
    a log-capturing test then sees nothing, depending on the order the tests ran in)."""
    from config.celery import app

    app.loader.import_default_modules()


@pytest.fixture(autouse=True)
def clear_pumping_limits():
    """Each test starts with fresh opt-in limit counters (they live in the process's cache)."""
    from django.core.cache import cache

    from consent.intake.services import trigger_clear

    cache.clear()
    trigger_clear()  # the intake's trigger key lives in Redis itself when there is one


@pytest.fixture
def make_user(db):
    """A user with an API role and its token: make_user("marketer") -> (user, token)."""
    import io

    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    def make(role, name=None):
        name = name or f"{role}-user"
        out = io.StringIO()
        call_command("create_api_user", name, role=role, stdout=out, stderr=io.StringIO())
        token = out.getvalue().strip().splitlines()[-1]
        user = get_user_model().objects.get(username=name)
        assert Token.objects.get(user=user).key == token
        return user, token

    return make


def _client(token=None):
    client = APIClient()
    if token:
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


@pytest.fixture
def api_client():
    """An unauthenticated API client."""
    return _client()


@pytest.fixture
def admin_client_api(make_user):
    return _client(make_user("admin")[1])


@pytest.fixture
def marketer_client(make_user):
    return _client(make_user("marketer")[1])


@pytest.fixture
def auditor_client(make_user):
    return _client(make_user("auditor")[1])


@pytest.fixture
def role_client(make_user):
    """role_client("auditor") -> an API client with that role's token; role_client(None) -> anonymous."""

    def make(role):
        return _client(make_user(role)[1] if role else None)

    return make


@pytest.fixture
def topic(db):
    from consent import services

    return services.topic_create(
        slug="promo",
        name="Acme promotions",
        keywords=["PROMO"],
        consent_text="I agree to receive Acme promotional messages, about 4 a month. Msg & data rates may apply.",
        confirmation_message="Acme: reply YES to confirm promotional messages, STOP to cancel.",
        help_message="Acme promotions. Help: help@acme.example. Reply STOP to opt out.",
        consent_ttl_days=365,
    )


@pytest.fixture
def now():
    from django.utils import timezone

    return timezone.now()


@pytest.fixture
def run_on_commit(django_capture_on_commit_callbacks):
    """Run on_commit callbacks (such as queued sends) as the block exits: `with run_on_commit(): ...`."""

    def runner():
        return django_capture_on_commit_callbacks(execute=True)

    return runner


@pytest.fixture(autouse=True)
def checkpoint_sink_dir(settings, tmp_path):
    """Each test its own write-once checkpoint directory: a checkpoint of another test's ledger would not match."""
    path = tmp_path / "checkpoints"
    path.mkdir(mode=0o700)
    settings.AUDIT_CHECKPOINT_SINK = str(path)
    return path
