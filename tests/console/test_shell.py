"""The console's shell in a browser: sign-in and out, navigation, small screens."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.console.conftest import PHONE, Tab
from tests.helpers import E2E_ADMIN_KEY


def test_a_key_that_fails_gets_the_apis_error(tab: Tab) -> None:
    tab.open()
    expect(tab.page).to_have_url(re.compile(r"#/signin$"))
    tab.page.get_by_label("API key").fill("sg_not_a_key_of_this_gateway")
    tab.page.get_by_role("button", name="Sign in").click()
    alert = tab.page.get_by_role("alert")
    expect(alert).to_contain_text("401 unauthenticated")
    expect(tab.page.get_by_role("navigation")).to_be_hidden()
    tab.screenshot("signin-refused")


def test_sign_in_navigate_and_sign_out(tab: Tab) -> None:
    tab.sign_in(E2E_ADMIN_KEY)
    nav = tab.page.get_by_role("navigation", name="Console sections")
    for name in ("Topics", "Consumers", "Schemas", "Clients", "Nodes"):
        expect(nav.get_by_role("link", name=name)).to_be_visible()
    expect(nav.get_by_role("link", name="Topics")).to_have_attribute("aria-current", "page")
    # The key lives in this tab's sessionStorage, never in a cookie.
    assert tab.page.evaluate("sessionStorage.getItem('sluicegate.apiKey')") == E2E_ADMIN_KEY
    assert tab.page.context.cookies() == []
    tab.screenshot("shell-topics")

    nav.get_by_role("link", name="Consumers").click()
    expect(tab.page.get_by_role("heading", name="Consumers")).to_be_visible()

    tab.page.get_by_role("button", name="Sign out").click()
    expect(tab.page).to_have_url(re.compile(r"#/signin$"))
    assert tab.page.evaluate("sessionStorage.getItem('sluicegate.apiKey')") is None
    # Signed out, a page of the console leads back to the sign-in form.
    tab.open("#/topics")
    expect(tab.page.get_by_label("API key")).to_be_visible()


def test_keyboard_reaches_the_sign_in_form(tab: Tab) -> None:
    tab.open()
    key = tab.page.get_by_label("API key")
    expect(key).to_be_focused()
    key.fill(E2E_ADMIN_KEY)
    tab.page.keyboard.press("Enter")
    expect(tab.page.get_by_role("heading", name="Topics", exact=True)).to_be_visible()
    # The skip link is the first stop of the keyboard, and leads into the page's content.
    tab.page.get_by_role("link", name="sluicegate").focus()
    tab.page.keyboard.press("Shift+Tab")
    expect(tab.page.get_by_role("link", name="Skip to content")).to_be_focused()
    tab.page.keyboard.press("Enter")
    expect(tab.page.locator("main")).to_be_focused()
    expect(tab.page).to_have_url(re.compile(r"#/topics$"))


def test_usable_at_phone_width(tab: Tab) -> None:
    tab.page.set_viewport_size(PHONE)
    tab.sign_in(E2E_ADMIN_KEY)
    nav = tab.page.get_by_role("navigation", name="Console sections")
    expect(nav.get_by_role("link", name="Nodes")).to_be_in_viewport()
    # Nothing wider than the screen: no sideways scrolling of the page itself.
    width = tab.page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"]
    tab.screenshot("shell-phone")
