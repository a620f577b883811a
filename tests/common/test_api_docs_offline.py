"""/api/docs/ (Swagger UI) and /api/redoc/ load their scripts and styles from the project's own
static files (drf-spectacular-sidecar), never from a CDN: the page works without internet."""

import re

import pytest
from django.contrib.staticfiles import finders


@pytest.mark.parametrize("url", ["/api/docs/", "/api/redoc/"])
def test_the_api_docs_pages_need_no_internet(client, url):
    page = client.get(url)
    assert page.status_code == 200
    html = page.content.decode()

    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css|png))"', html)
    assert assets, "the page loads no script at all"
    for asset in assets:
        assert asset.startswith("/static/"), f"{asset} is not one of our static files"
        assert finders.find(asset.removeprefix("/static/")), f"{asset} is missing"
    assert "cdn." not in html and "unpkg" not in html
