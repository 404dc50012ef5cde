"""The page's Results view in a real headless Chromium: the table, the uncounted events by
visitor, each linked to its request, kept live. Waits are for states, never for time."""

from __future__ import annotations

from typing import Any

import requests
from playwright.sync_api import Page, expect
from test_inspector import XSS, browser, page, server  # noqa: F401  (the browser fixtures)
from test_results import BASE, PURCHASE, conv, imp

from mockserver import ThreadedServer


def post(server: ThreadedServer, *batches: Any) -> None:  # noqa: F811
    for batch in batches:
        assert requests.post(server.events_url, json=batch, timeout=10).status_code == 204


def table(tab: Page) -> list[list[str]]:
    return tab.eval_on_selector_all(
        "#results .results-table tbody tr",
        "rows => rows.map(r => [...r.cells].map(c => c.innerText.trim()))",
    )


def open_results(tab: Page) -> None:
    tab.click("#views a[data-view=results]")
    expect(tab.locator("#results h2")).to_have_text("Results")


def test_the_results_view_shows_the_table_and_what_did_not_count(
    page: Page,  # noqa: F811
    server: ThreadedServer,  # noqa: F811
) -> None:
    post(server, *BASE, PURCHASE, conv("user-9"))
    open_results(page)
    expect(page.locator("#results")).to_have_attribute("data-last-id", "4")
    assert page.inner_text("#results .experiment h3") == (
        "checkout_ab experiment 111127 · flag checkout_flow · feature-test"
    )
    assert table(page) == [
        ["control (111128)", "1", "purchase", "0", "0", "0"],
        ["treatment (111129)", "1", "purchase", "1", "1", "4200"],
    ]
    assert page.inner_text("#results h3 >> nth=1") == "Did not count: 1 event(s) (no_experiment 1)"
    item = page.locator(".uncounted[data-visitor=user-9] li")
    expect(item).to_have_count(1)
    assert item.inner_text().startswith(
        "no_experiment purchase — visitor 'user-9' has no impression"
    )
    assert page.locator("#requests-view").is_hidden()
    item.locator("a.request-link").click()
    expect(page.locator("#detail h2")).to_contain_text("Request #4")
    assert page.url.endswith("#request-4")
    assert page.locator("#results").is_hidden()
    expect(page.locator("#rows tr.selected")).to_have_count(1)


def test_the_results_view_follows_new_requests(
    page: Page,  # noqa: F811
    server: ThreadedServer,  # noqa: F811
) -> None:
    post(server, *BASE)
    open_results(page)
    expect(page.locator("#results")).to_have_attribute("data-last-id", "2")
    post(server, imp("user-3"))
    expect(page.locator("#results")).to_have_attribute("data-last-id", "3")
    assert [row[:2] for row in table(page)] == [
        ["control (111128)", "1"],
        ["treatment (111129)", "2"],
    ]
    page.go_back()  # the tabs are links: the browser's history works
    expect(page.locator("#requests-view")).to_be_visible()


def test_an_address_with_a_request_link_opens_that_request(
    page: Page,  # noqa: F811
    server: ThreadedServer,  # noqa: F811
) -> None:
    post(server, conv("user-9"))
    page.goto(server.url + "/_mock/#request-1")
    expect(page.locator("#detail h2")).to_contain_text("Request #1")


def test_payload_strings_are_text_in_the_results_view(
    page: Page,  # noqa: F811
    server: ThreadedServer,  # noqa: F811
) -> None:
    post(server, conv(XSS["visitor"], key=XSS["key"]))
    open_results(page)
    group = page.locator(".uncounted")
    expect(group).to_have_count(1)
    assert group.get_attribute("data-visitor") == XSS["visitor"]
    assert XSS["visitor"] in group.inner_text() and XSS["key"] in group.inner_text()
    assert page.evaluate("window.__xss") is None
    assert page.locator("#results img, #results svg, #results script").count() == 0
