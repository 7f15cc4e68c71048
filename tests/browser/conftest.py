"""The browser tests' shared fixtures: one Chromium for the session, one way to log in.

``chromium`` is Debian's Chromium, launched once per session with the flags of
:data:`tests.browsertools.CHROMIUM_ARGS`. Each test gets ``browser``, a :class:`Browser`
on it whose contexts (one per signed-in user, cookies of their own) are closed after the
test, also when it failed. ``browser.login(hub_url, name, password)`` is the one login:
the hub's own form, in a fresh context.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browsertools import CHROMIUM, CHROMIUM_ARGS, sign_in

#: The window of every page unless a test asks for another.
VIEWPORT = {"width": 1400, "height": 900}


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """One Chromium for the whole session (a launch is seconds on a loaded machine)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                              args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Browser:
    """One test's view of the session's Chromium: contexts it opens are its own."""

    def __init__(self, chromium: Any) -> None:
        self.chromium = chromium
        self.contexts: list[Any] = []

    def new_context(self, **options: Any) -> Any:
        context = self.chromium.new_context(**{"viewport": VIEWPORT, **options})
        self.contexts.append(context)
        return context

    def new_page(self, **options: Any) -> Any:
        """A page in a fresh context, with the long default wait of a loaded machine."""
        page = self.new_context(**options).new_page()
        page.set_default_timeout(60_000)
        return page

    def login(self, hub_url: str, name: str, password: str, **options: Any) -> Any:
        """A fresh context signed in as ``name`` through the hub's own form."""
        return sign_in(self.new_page(**options), hub_url, name, password)

    def close(self) -> None:
        """Close this test's contexts (the session's Chromium stays)."""
        while self.contexts:
            self.contexts.pop().close()


@pytest.fixture
def browser(chromium: Any) -> Iterator[Browser]:
    pages = Browser(chromium)
    yield pages
    pages.close()


# pytest-jupyter (loaded by the Lab extension's unit tests through ``pytest_plugins``,
# which registers it for the whole session) adds two autouse fixtures to every test: a
# fresh event loop closed after the test, and a Jupyter server cleanup run on it. Sync
# Playwright keeps the session's Chromium on an event loop that is running across tests,
# which that loop fixture then finds and fails to close. Browser tests start no
# in-process Jupyter server: both are no-ops here.
@pytest.fixture
def jp_asyncio_loop() -> Iterator[None]:
    yield None


@pytest.fixture
def jp_server_cleanup() -> Iterator[None]:
    yield None
