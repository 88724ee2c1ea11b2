"""``/docs`` in a real headless Chromium against a real server.

Clusters are often air-gapped: the pages must work with assets served by stepd itself, so
every request the browser makes must go to the server under test. Swagger UI must show
every POST operation of the spec and run a delete step through "Try it out", also behind
a reverse proxy that serves stepd under a path prefix, with bearer tokens on.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from tests.support.proxy import ReverseProxy
from tests.support.server import serve

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs Chromium and its driver (Debian: apt-get install chromium chromium-driver; "
    ".ci/run installs them)",
)

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    # Belt and braces: names never resolve, so nothing can leave the machine even if a page
    # asked for it. Such a request is still logged, and the tests below catch it.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)
# Schemes that reach the network; data:, blob: and the browser's own chrome:// pages do not.
NETWORK_SCHEMES = {"http", "https", "ws", "wss", "ftp"}
WAIT_SECONDS = 30
TOKEN = "swagger-ui-token-3c9d"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    """Headless Chromium with a fresh profile, logging every network request it makes."""
    assert CHROMIUM is not None
    assert CHROMEDRIVER is not None
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def requested_urls(driver: WebDriver) -> list[str]:
    """Every URL the browser asked the network for since the last call (DevTools log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message: dict[str, Any] = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def assert_only_served_by(base_url: str, urls: list[str]) -> None:
    server = urlsplit(base_url).netloc
    remote = [
        url
        for url in urls
        if urlsplit(url).scheme in NETWORK_SCHEMES and urlsplit(url).netloc != server
    ]
    assert remote == [], f"the page requested other hosts than {server}"
    assert any(urlsplit(url).netloc == server for url in urls), "no request was logged"


def wait_for(driver: WebDriver, css: str) -> Any:
    return WebDriverWait(driver, WAIT_SECONDS).until(
        expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, css))
    )


def test_swagger_ui_runs_a_delete_offline(
    browser: WebDriver, live_server: str, root_dir: Path
) -> None:
    (root_dir / "doomed.txt").write_text("x")
    spec = httpx.get(f"{live_server}/openapi.json").json()
    post_paths = sorted(path for path, item in spec["paths"].items() if "post" in item)
    assert "/steps/delete" in post_paths

    browser.get(f"{live_server}/docs")
    for path in post_paths:
        wait_for(browser, f".opblock-post .opblock-summary-path[data-path='{path}']")
    try_out_delete(browser)

    assert not (root_dir / "doomed.txt").exists()
    assert_only_served_by(live_server, requested_urls(browser))


def test_swagger_ui_runs_a_delete_behind_a_prefix_with_a_token(
    browser: WebDriver, root_dir: Path, tmp_path: Path
) -> None:
    (root_dir / "doomed.txt").write_text("x")
    (tmp_path / "tokens").write_text(f"browser:{TOKEN}\n")
    args = ("--root-path", "/stepd", "--auth-tokens-file", str(tmp_path / "tokens"))
    with serve(root_dir, *args) as server, ReverseProxy(server.base_url, prefix="/stepd") as proxy:
        browser.get(f"{proxy.url}/docs")
        wait_for(browser, ".btn.authorize").click()
        wait_for(browser, ".modal-ux input").send_keys(TOKEN)
        wait_for(browser, ".modal-ux .auth-btn-wrapper .btn.authorize").click()
        wait_for(browser, ".modal-ux .btn-done").click()
        try_out_delete(browser)
        access = server.wait_for_line(lambda line: line.get("route") == "/steps/delete")

    assert not (root_dir / "doomed.txt").exists()
    assert access["caller"] == "browser"
    urls = requested_urls(browser)
    assert_only_served_by(proxy.url, urls)
    network = [url for url in urls if urlsplit(url).scheme in NETWORK_SCHEMES]
    assert all(urlsplit(url).path.startswith("/stepd/") for url in network), network


def try_out_delete(browser: WebDriver) -> None:
    """Delete ``doomed.txt`` through the delete operation's "Try it out"; expect 200."""
    operation = "#operations-steps-runDeleteStep"
    wait_for(browser, f"{operation} .opblock-summary-control").click()
    wait_for(browser, f"{operation} .try-out__btn").click()
    body = wait_for(browser, f"{operation} textarea.body-param__text")
    body.send_keys(Keys.CONTROL, "a")
    body.send_keys(Keys.DELETE)
    body.send_keys(json.dumps({"apiVersion": "v1", "path": "doomed.txt"}))
    wait_for(browser, f"{operation} .btn.execute").click()

    status = wait_for(browser, f"{operation} .live-responses-table .response .response-col_status")
    assert status.text.strip().startswith("200")
    shown = wait_for(browser, f"{operation} .live-responses-table .response-col_description pre")
    assert json.loads(shown.text)["deleted"] == ["doomed.txt"]
