"""Each role class admits its own role only; endpoints compose them with `|` and `&`."""

import pytest
from rest_framework.test import APIRequestFactory

from consent.permissions import IsAdminRole, IsAuditorRole, IsMarketerRole, IsReadOnly, ReadAnyRoleWriteMarketer

ROLES = ("admin", "marketer", "auditor")


@pytest.mark.parametrize("permission,admitted", [
    (IsAdminRole, {"admin"}),
    (IsMarketerRole, {"marketer"}),
    (IsAuditorRole, {"auditor"}),
])
@pytest.mark.parametrize("role", ROLES)
def test_a_role_class_admits_only_its_role(make_user, permission, admitted, role):
    request = APIRequestFactory().get("/")
    request.user = make_user(role)[0]
    assert permission().has_permission(request, None) is (role in admitted)


@pytest.mark.parametrize("method,admitted", [("get", True), ("head", True), ("options", True), ("post", False),
                                             ("patch", False), ("delete", False)])
def test_read_only_admits_safe_methods(method, admitted):
    request = getattr(APIRequestFactory(), method)("/")
    assert IsReadOnly().has_permission(request, None) is admitted


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("role", ROLES)
def test_every_role_reads_and_marketers_and_admins_write(make_user, method, role):
    request = getattr(APIRequestFactory(), method)("/")
    request.user = make_user(role)[0]
    assert ReadAnyRoleWriteMarketer().has_permission(request, None) is (method == "get" or role != "auditor")
