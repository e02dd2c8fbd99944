"""/docs and /redoc work offline: their pages name only our own URLs, and we serve each asset."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import httpx
import pytest
from support import ConductorProcess


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "spec-url") and value:
                self.urls.append(value)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_use_only_our_assets(conductor_server: ConductorProcess, page: str) -> None:
    response = httpx.get(conductor_server.url + page, timeout=10)  # no token: the pages are public
    assert response.status_code == 200
    html = response.text
    assert "http://" not in html and "https://" not in html and "//cdn" not in html
    parser = _Links()
    parser.feed(html)
    urls = parser.urls + re.findall(r"url: '([^']+)'", html)
    assert len(urls) >= 2, html
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url
        asset = httpx.get(conductor_server.url + url, timeout=10)
        assert asset.status_code == 200, url
        assert len(asset.content) > 100, url
    scripts = [u for u in urls if u.endswith(".js")]
    assert scripts, urls
    for script in scripts:
        served = httpx.get(conductor_server.url + script, timeout=10)
        assert "javascript" in served.headers["content-type"]
        assert "https://cdn." not in served.text  # ReDoc's logo is ours too
    assert "default-src 'self'" in response.headers["content-security-policy"]
