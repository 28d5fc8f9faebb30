"""The console in a real browser: Debian's Chromium, driven by Playwright, against a real
``sluicegate serve`` on each storage backend.

Nothing here skips: a machine without Chromium fails these tests, saying how to install
it (``.ci/run`` and ``make test`` do). Each test gets a new tab (its own
``sessionStorage``, so its own sign-in) in a browser with a fresh profile; a tab that
logs a script error or a Content-Security-Policy violation fails its test. Screenshots
go to ``tests/console/screenshots/`` (not committed) for a reviewer to look at.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, ConsoleMessage, Page, sync_playwright

from sluicegate.testing.chromium import CHROMIUM, CHROMIUM_ARGS
from sluicegate.testing.process import ServerProcess, serve_in_subprocess
from tests.conftest import BACKENDS
from tests.helpers import E2E_ADMIN_KEY, backend_env

SCREENSHOTS = Path(__file__).parent / "screenshots"
#: 1280 x 800, the desktop size the console is laid out for; phones are tried apart.
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module", params=BACKENDS)
def console_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """``sluicegate serve`` on a fresh store of each backend, its admin key ``E2E_ADMIN_KEY``."""
    env = {"SLUICEGATE_ADMIN_KEY": E2E_ADMIN_KEY, **backend_env(request, request.param)}
    with serve_in_subprocess(tmp_path_factory.mktemp("data"), args=(), env=env) as server:
        yield server


@pytest.fixture(scope="module")
def admin(console_server: ServerProcess) -> Iterator[httpx.Client]:
    """An HTTP client of the server with the admin key, for what a test sets up."""
    headers = {"Authorization": f"Bearer {E2E_ADMIN_KEY}"}
    with httpx.Client(base_url=console_server.url, headers=headers, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    """Chromium with a fresh profile, for one module.

    Not for the whole run: Playwright's synchronous API holds an event loop running in
    this thread while it is open, and the suite's ``async`` tests could not start their
    own. A module of browser tests holds no ``async`` test.
    """
    if not Path(CHROMIUM).exists() and shutil.which(CHROMIUM) is None:
        pytest.fail(
            f"no Chromium at {CHROMIUM}: install Debian's chromium package "
            "(apt-get install chromium), or name the binary in SLUICEGATE_CHROMIUM"
        )
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport=DESKTOP,
        )
        try:
            yield context
        finally:
            context.close()


class Tab:
    """A browser tab on the console, with what the tests do there often."""

    def __init__(self, page: Page, server: ServerProcess) -> None:
        self.page = page
        self.url = server.url
        self.problems: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))

    def _console(self, message: ConsoleMessage) -> None:
        # A refused request shows as a console error too (a 401 on a bad key): only
        # script errors and policy violations are problems of the page itself.
        text = message.text
        if message.type == "error" and "Failed to load resource" not in text:
            self.problems.append(f"console error: {text}")
        if "Content Security Policy" in text or "Content-Security-Policy" in text:
            self.problems.append(f"policy violation: {text}")

    def open(self, fragment: str = "") -> None:
        self.page.goto(f"{self.url}/console{fragment}")

    def sign_in(self, key: str) -> None:
        """Sign in through the form and wait for the topics page."""
        self.open("#/signin")
        self.page.get_by_label("API key").fill(key)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.get_by_role("heading", name="Topics", exact=True).wait_for()

    def screenshot(self, name: str) -> None:
        SCREENSHOTS.mkdir(exist_ok=True)
        self.page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


@pytest.fixture
def tab(browser_context: BrowserContext, console_server: ServerProcess) -> Iterator[Tab]:
    """A new tab (nobody signed in); fails the test if the page logged a problem."""
    page = browser_context.new_page()
    page.set_default_timeout(10_000)
    opened = Tab(page, console_server)
    try:
        yield opened
    finally:
        page.close()
    assert not opened.problems, "\n".join(opened.problems)
