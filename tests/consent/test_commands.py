"""Management commands of the consent core: create_api_user and demo_setup."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.authtoken.models import Token

from consent.models import Topic

pytestmark = pytest.mark.django_db


def run(*args, **kwargs):
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO(), **kwargs)
    return out.getvalue()


def test_create_api_user_prints_token_alone_on_last_line_and_updates_role(api_client):
    token = run("create_api_user", "carol", role="auditor").strip().splitlines()[-1]
    assert Token.objects.get(key=token).user.username == "carol"
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api_client.post("/api/v1/topics/", {}, format="json").status_code == 403
    again = run("create_api_user", "carol", role="marketer").strip().splitlines()[-1]
    assert again == token  # same user, same token, new role
    assert api_client.post("/api/v1/topics/", {}, format="json").status_code == 400
    rotated = run("create_api_user", "carol", role="marketer", rotate=True).strip().splitlines()[-1]
    assert rotated != token and not Token.objects.filter(key=token).exists()


def test_create_api_user_refuses_unknown_role():
    with pytest.raises(CommandError):
        run("create_api_user", "dave", role="boss")


def test_demo_setup_is_idempotent():
    first = run("demo_setup")
    second = run("demo_setup")
    assert Topic.objects.filter(slug="promo").count() == 1
    assert "Admin API token" in first and "/api/docs/" in first
    assert first.splitlines()[-3:] == second.splitlines()[-3:]
