"""Users and roles in the staff action log (rule 16): the Django admin's user pages and create_api_user
record every change through one function, in the transaction of the change."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command

from consent.audit.actions import verify_actions
from consent.models import StaffAction
from consent.roles import ensure_role_groups

pytestmark = pytest.mark.django_db
USERS = "/admin/auth/user/"


@pytest.fixture
def admin_browser(client, make_user):
    user, _ = make_user("admin", "root")
    client.force_login(user)
    return client


def change_form(user, **changes):
    data = {"username": user.username, "first_name": "", "last_name": "", "email": "",
            "is_active": "on", "is_staff": "on", "date_joined_0": "2026-01-01", "date_joined_1": "00:00:00",
            "initial-date_joined_0": "2026-01-01", "initial-date_joined_1": "00:00:00",
            "groups": [g.pk for g in user.groups.all()], "user_permissions": []}
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def user_actions(name):
    return list(StaffAction.objects.filter(object_type="user", object_repr=name).order_by("seq"))


def test_a_role_changed_in_the_admin_is_a_staff_action(admin_browser, make_user):
    user, _ = make_user("marketer", "mia")
    groups = ensure_role_groups()
    response = admin_browser.post(f"{USERS}{user.pk}/change/", change_form(user, groups=[groups["auditor"].pk]))
    assert response.status_code == 302, response.content.decode()[:2000]
    assert list(get_user_model().objects.get(pk=user.pk).groups.values_list("name", flat=True)) == ["auditor"]

    record = user_actions("mia")[-1]
    assert (record.action, record.actor, record.via, record.ip) == ("user.update", "user:root", "admin", "127.0.0.1")
    assert record.before == {"roles": ["marketer"]} and record.after == {"roles": ["auditor"]}
    assert verify_actions().ok


def test_flags_and_other_groups_are_recorded_and_an_unchanged_save_records_nothing(admin_browser, make_user):
    user, _ = make_user("agent", "ada")
    other = Group.objects.create(name="night shift")
    admin_browser.post(f"{USERS}{user.pk}/change/",
                       change_form(user, groups=[g.pk for g in user.groups.all()] + [other.pk], is_active=None))
    record = user_actions("ada")[-1]
    assert record.before == {"groups": [], "is_active": True}
    assert record.after == {"groups": ["night shift"], "is_active": False}
    count = StaffAction.objects.count()
    user = get_user_model().objects.get(pk=user.pk)
    admin_browser.post(f"{USERS}{user.pk}/change/", change_form(user, is_active=None))
    assert StaffAction.objects.count() == count


def test_a_user_added_and_deleted_in_the_admin(admin_browser):
    added = admin_browser.post(f"{USERS}add/", {"username": "newbie", "usable_password": "false",
                                                "password1": "", "password2": ""})
    assert added.status_code == 302, added.content.decode()[:2000]
    user = get_user_model().objects.get(username="newbie")
    created = user_actions("newbie")[-1]
    assert created.action == "user.create" and created.before is None and created.after["roles"] == []
    assert "password" not in str(created.after)

    assert admin_browser.post(f"{USERS}{user.pk}/delete/", {"post": "yes"}).status_code == 302
    deleted = user_actions("newbie")[-1]
    assert deleted.action == "user.delete" and deleted.before["username"] == "newbie" and deleted.after is None


def test_create_api_user_records_through_the_same_function(make_user):
    make_user("auditor", "ann")
    make_user("admin", "ann")
    out = io.StringIO()
    call_command("create_api_user", "ann", role="admin", stdout=out, stderr=io.StringIO())  # nothing changed
    call_command("create_api_user", "ann", role="admin", rotate=True, stdout=out, stderr=io.StringIO())
    created, role, rotated = user_actions("ann")
    assert created.action == "user.create" and created.after["roles"] == ["auditor"] and created.via == "command"
    assert role.before == {"is_superuser": False, "roles": ["auditor"]}
    assert role.after == {"is_superuser": True, "roles": ["admin"]}
    assert rotated.before == {} and rotated.after == {"token_rotated": True}
    assert created.actor.startswith("os:")
