"""The API docs pages reference only this service's own files (no CDN), without a browser.

The browser test (test_docs_browser.py) proves they render; this one runs everywhere.
"""

import re

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/api/docs/", "/api/redoc/"])
def test_docs_page_loads_nothing_from_elsewhere(client, path):
    response = client.get(path)
    assert response.status_code == 200
    html = response.content.decode()
    references = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    assert references, html[:500]
    assert [ref for ref in references if re.match(r"(?:[a-z]+:)?//", ref)] == []
    assert all(ref.startswith("/static/drf_spectacular_sidecar/") for ref in references if ref.endswith(".js"))
    policy = response["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "img-src 'self' data:" in policy and "connect-src 'self'" in policy
