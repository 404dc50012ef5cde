"""The web inspector in a real headless Chromium (Debian's, driven by Playwright)."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from helpers import conversion, impression
from playwright.sync_api import Browser, Page, expect, sync_playwright

from mockserver import VERDICTS, ThreadedServer
from mockserver.web.inspector import CSP

pytest_plugins = ["pytester"]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
XSS = {
    "visitor": '<img src=x onerror="window.__xss=1">',
    "tag": "<script>window.__xss=2</script>",
    "attribute": "javascript:window.__xss=3",
    "key": '"><svg onload="window.__xss=4">',
}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def server() -> Iterator[ThreadedServer]:
    with ThreadedServer() as running:
        yield running


# The page loads the list, the fault plan and the datafiles with separate fetches that may end
# in any order. "slow-admin" holds every admin answer back in the browser (without blocking the
# test), the banners' longer than the list's: a test that reads the page before the state it
# waits for has arrived fails every time instead of once in a while on a loaded machine.
SLOW_ADMIN = """
const realFetch = window.fetch;
window.fetch = (url, options) => {
  const late = /[/]_mock[/](faults|datafiles)/.test(String(url)) ? 900 : 300;
  return realFetch(url, options).then((response) =>
    new Promise((resolve) => setTimeout(() => resolve(response), late)));
};
"""


@pytest.fixture(params=["prompt", "slow-admin"])
def page(
    browser: Browser, server: ThreadedServer, request: pytest.FixtureRequest
) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    if request.param == "slow-admin":
        context.add_init_script(SLOW_ADMIN)
    opened = context.new_page()
    opened.errors = []  # type: ignore[attr-defined]
    opened.on("pageerror", lambda error: opened.errors.append(str(error)))  # type: ignore[attr-defined]
    opened.on("dialog", lambda dialog: opened.errors.append(f"dialog: {dialog.message}"))  # type: ignore[attr-defined]
    opened.goto(server.url + "/_mock/")
    opened.wait_for_selector("#live.on")
    yield opened
    assert opened.errors == []  # type: ignore[attr-defined]
    context.close()


def post(server: ThreadedServer, payload: Any) -> None:
    requests.post(server.events_url, json=payload, timeout=10)


def visible_rows(page: Page) -> list[list[str]]:
    return page.eval_on_selector_all(
        "#rows tr", "rows => rows.map(r => [...r.cells].map(c => c.innerText.trim()))"
    )


def test_page_and_assets_are_served_with_a_strict_csp(server: ThreadedServer) -> None:
    page = requests.get(server.url + "/_mock/", timeout=5)
    assert page.headers["content-security-policy"] == CSP
    assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP
    assert "<script>" not in page.text and " on" not in page.text.split("<body>")[1].lower()
    script = requests.get(server.url + "/_mock/static/inspector.js", timeout=5)
    assert script.headers["content-type"].startswith("text/javascript")
    assert "innerHTML" not in script.text and "eval(" not in script.text
    assert requests.get(server.url + "/_mock/static/nope.js", timeout=5).status_code == 404


def test_a_batch_appears_live_without_a_reload(page: Page, server: ThreadedServer) -> None:
    assert visible_rows(page) == []
    navigations = page.evaluate("performance.getEntriesByType('navigation').length")
    post(server, conversion("purchase", "live-visitor", revenue=4200))
    page.wait_for_selector("#rows tr >> text=live-visitor")  # how fast: not a test's business
    (row,) = visible_rows(page)
    assert row[2:6] == ["python-sdk 5.7.0", "live-visitor", "conversion", "purchase"]
    assert row[6].startswith("accepted")
    assert page.evaluate("performance.getEntriesByType('navigation').length") == navigations


def test_verdict_badges_warnings_and_duplicates(page: Page, server: ThreadedServer) -> None:
    batch = impression("dup-visitor")
    post(server, batch)
    post(server, batch)
    bad = impression("rejected-visitor")
    bad["account_id"] = 7
    post(server, bad)
    requests.post(server.events_url, data=b"{broken", timeout=5)
    server.endpoint.faults.add(status=503, times=1)
    post(server, impression("faulted-visitor"))
    expect(page.locator("#rows tr")).to_have_count(5)
    badges = page.eval_on_selector_all("#rows .badge", "b => b.map(x => x.textContent)")
    assert badges == ["faulted", "malformed", "rejected", "accepted", "accepted"]
    assert page.locator("#rows .dup").count() == 1
    assert (
        "⚠ 1" in page.locator("#rows tr").nth(4).inner_text()
        or "⚠ 1" in page.locator("#rows tr").nth(3).inner_text()
    )
    # The fault plan comes by its own fetch, which may end after the list's: wait for it.
    expect(page.locator("#faults")).to_contain_text("status=503,times=1")


def test_a_wrong_path_and_a_refused_method_show_as_not_found(
    page: Page, server: ThreadedServer
) -> None:
    options = page.eval_on_selector_all("#f-verdict option", "o => o.map(x => x.value)")
    assert options == ["", *VERDICTS]
    post(server, impression("on-the-right-path"))
    requests.post(server.url + "/v1/event", json=impression("lost-visitor"), timeout=5)
    requests.get(server.events_url, timeout=5)
    expect(page.locator("#rows tr")).to_have_count(3)
    rows = visible_rows(page)
    assert [(r[5], r[6]) for r in rows[:2]] == [
        ("GET /v1/events", "not_found"),
        ("POST /v1/event", "not_found"),
    ]
    page.select_option("#f-verdict", "not_found")
    expect(page.locator("#rows tr")).to_have_count(2)
    page.click("#rows tr >> text=POST /v1/event")
    detail = page.locator("#detail")
    expect(detail).to_contain_text("/v1/event is not served; post batches to /v1/events")
    assert "#2 POST /v1/event" in detail.inner_text()
    assert "lost-visitor" in detail.locator("pre.json").inner_text()  # the body as it came


def test_filters_narrow_the_list(page: Page, server: ThreadedServer) -> None:
    post(server, impression("alice"))
    post(server, conversion("purchase", "bob"))
    post(server, conversion("signup", "carol"))
    bad = conversion("refund", "dave")
    del bad["account_id"]
    post(server, bad)
    expect(page.locator("#rows tr")).to_have_count(4)
    page.fill("#f-visitor", "bob")
    assert [r[3] for r in visible_rows(page)] == ["bob"]
    page.fill("#f-visitor", "")
    page.select_option("#f-kind", "conversion")
    assert [r[3] for r in visible_rows(page)] == ["dave", "carol", "bob"]
    page.fill("#f-key", "signup")
    assert [r[3] for r in visible_rows(page)] == ["carol"]
    page.fill("#f-key", "")
    page.select_option("#f-kind", "")
    page.select_option("#f-verdict", "rejected")
    assert [r[3] for r in visible_rows(page)] == ["dave"]
    page.select_option("#f-verdict", "")
    page.fill("#search", "ALI")
    assert [r[3] for r in visible_rows(page)] == ["alice"]
    page.fill("#search", "")
    page.fill("#f-client", "go-sdk")
    assert visible_rows(page) == []
    assert "4 request(s), 4 event(s), 0 shown" in page.inner_text("#counts")


def test_detail_view_shows_each_violation_at_its_path(page: Page, server: ThreadedServer) -> None:
    bad = impression("mallory")
    bad["visitors"][0]["snapshots"][0]["events"][0]["timestamp"] = "soon"
    del bad["visitors"][0]["attributes"][0]["type"]
    post(server, bad)
    page.click("#rows tr >> text=mallory")
    detail = page.locator("#detail")
    assert "client IP (stored)127.0.0.0" in detail.inner_text().replace("\t", "")
    stamp = detail.locator("[data-path='visitors[0].snapshots[0].events[0].timestamp']")
    assert stamp.inner_text() == '"soon"'
    assert "mark" in stamp.get_attribute("class") and "error" in stamp.get_attribute("class")
    flag = detail.locator("[data-flag='visitors[0].snapshots[0].events[0].timestamp']")
    assert flag.inner_text() == (
        "↑ visitors[0].snapshots[0].events[0].timestamp: 'timestamp' must be an integer, got string"
    )
    # a missing field is flagged on the nearest part of the payload that exists
    missing = detail.locator("[data-flag='visitors[0].attributes[0].type']")
    assert "'type' is required" in missing.inner_text()
    attribute = detail.locator("[data-path='visitors[0].attributes[0]']")
    assert "error" in attribute.get_attribute("class")
    assert "content-type" in detail.locator("table.kv").last.inner_text()
    assert "experiment_id" in detail.locator("table.decisions").inner_text()
    assert "plan" in detail.locator("table.attributes").inner_text()


def _copied(page: Page, visitor: str) -> str:
    page.click(f"#rows tr >> text={visitor}")
    page.click("#detail button.copy")
    return page.inner_text("#detail code.assertion")


def test_copied_assertions_pass_when_pasted_into_a_test(
    page: Page, server: ThreadedServer, pytester: pytest.Pytester
) -> None:
    sent = {
        "conv": conversion(
            "purchase",
            "copy-conv",
            revenue=4200,
            value=3.5,
            tags={"category": "shoes", "gift": True},
        ),
        "imp": impression("copy-imp"),
    }
    for payload in sent.values():
        post(server, payload)
    expect(page.locator("#rows tr")).to_have_count(2)
    lines = {name: _copied(page, f"copy-{name}") for name in sent}
    assert lines["conv"] == (
        'logx_server.assert_conversion("purchase", visitor_id="copy-conv", revenue=4200, '
        'value=3.5, tags={"category": "shoes", "gift": True})'
    )
    assert lines["imp"] == (
        'logx_server.assert_impression(visitor_id="copy-imp", experiment_id="111127", '
        'variation_id="111129", flag_key="checkout_flow", variation_key="treatment")'
    )
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        test_pasted=f"""
import requests
SENT = {json.dumps(sent)!r}

def test_pasted(logx_server):
    import json
    for payload in json.loads(SENT).values():
        requests.post(logx_server.events_url, json=payload)
    {lines["conv"]}
    {lines["imp"]}
"""
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_a_new_batch_keeps_the_detail_being_read(page: Page, server: ThreadedServer) -> None:
    post(server, impression("reading"))
    copied = _copied(page, "reading")
    post(server, conversion("purchase", "arriving"))
    expect(page.locator("#rows tr")).to_have_count(2)
    assert page.locator("#detail code.assertion").inner_text() == copied
    assert page.locator("#rows tr.selected").inner_text().find("reading") >= 0


def test_payload_strings_render_as_text_and_run_nothing(page: Page, server: ThreadedServer) -> None:
    batch = conversion(XSS["key"], XSS["visitor"], tags={"note": XSS["tag"]})
    batch["visitors"][0]["attributes"][0]["value"] = XSS["attribute"]
    batch["client_name"] = XSS["tag"]
    post(server, batch)
    page.wait_for_selector("#rows tr")
    page.click("#rows tr")
    page.click("#detail button.copy")
    expect(page.locator("#detail code.assertion")).to_be_visible()
    assert page.evaluate("window.__xss") is None
    for tag in ("img", "svg", "script"):
        assert page.locator(f"#rows {tag}, #detail {tag}").count() == 0
    text = page.inner_text("body")
    for value in XSS.values():
        assert value in text
    # No javascript: link was made (the only links are the page's own view tabs).
    assert page.locator("#rows a, #detail a, a[href^='javascript:' i]").count() == 0


def test_clear_button_empties_the_journal_and_the_page(page: Page, server: ThreadedServer) -> None:
    post(server, impression("to-clear"))
    page.wait_for_selector("#rows tr")
    page.click("#clear")
    expect(page.locator("#rows tr")).to_have_count(0)
    assert server.endpoint.journal.requests() == []
    post(server, impression("after-clear"))
    page.wait_for_selector("#rows tr >> text=after-clear")
    assert len(visible_rows(page)) == 1


def test_narrow_window_and_dark_mode(browser: Browser, server: ThreadedServer) -> None:
    post(server, impression("narrow"))
    context = browser.new_context(viewport={"width": 420, "height": 800}, color_scheme="dark")
    page = context.new_page()
    page.goto(server.url + "/_mock/")
    page.click("#rows tr >> text=narrow")
    listing = page.locator("section.list").bounding_box()
    detail = page.locator("#detail").bounding_box()
    assert listing and detail and detail["y"] >= listing["y"] + listing["height"] - 1
    assert detail["width"] <= 420
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(18, 21, 27)"
    assert page.evaluate("document.documentElement.scrollWidth") <= 420
    context.close()


def test_full_client_address_is_not_on_the_page(browser: Browser) -> None:
    from mockserver import Endpoint, EndpointConfig, MemoryJournal, TrustedProxies

    config = EndpointConfig(trusted_proxies=TrustedProxies.parse(["127.0.0.1/32"]))
    with ThreadedServer(Endpoint(MemoryJournal(), config=config)) as proxied:
        requests.post(
            proxied.events_url,
            json=impression("behind-proxy"),
            headers={"X-Forwarded-For": "203.0.113.77"},
            timeout=10,
        )
        context = browser.new_context()
        page = context.new_page()
        page.goto(proxied.url + "/_mock/")
        page.click("#rows tr >> text=behind-proxy")
        text = page.inner_text("body")
        assert "203.0.113.0" in text
        assert "203.0.113.77" not in text
        context.close()


def test_datafile_keys_are_shown_next_to_the_ids(browser: Browser) -> None:
    from helpers import DATAFILE
    from sdk_traffic import sdk_batch

    from mockserver import Datafile, Datafiles, Endpoint, EndpointConfig, MemoryJournal

    config = EndpointConfig(datafiles=Datafiles((Datafile.load(DATAFILE),)))
    ids_only = sdk_batch("activate")
    decision = ids_only["visitors"][0]["snapshots"][0]["decisions"][0]
    del decision["metadata"]  # an older SDK: ids only
    ids_only["visitors"][0]["visitor_id"] = "ids-only"
    conversion = sdk_batch("track")
    del conversion["visitors"][0]["snapshots"][0]["events"][0]["key"]
    conversion["visitors"][0]["visitor_id"] = "keyless"
    with ThreadedServer(Endpoint(MemoryJournal(), config=config)) as checked:
        post(checked, ids_only)
        post(checked, conversion)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.goto(checked.url + "/_mock/")
        expect(page.locator("#datafiles")).to_have_text(
            "Checked against: datafile.json (project 111001, revision 42)"
        )
        page.click("#rows tr >> text=ids-only")
        detail = page.locator("#detail")
        path = "visitors[0].snapshots[0].decisions[0]"
        assert (
            detail.locator(f"[data-key-for='{path}.experiment_id']")
            .inner_text()
            .endswith("checkout_ab")
        )
        assert (
            detail.locator(f"[data-key-for='{path}']").inner_text().endswith("flag checkout_flow")
        )
        assert detail.locator("[data-key-for='visitors[0].attributes[0].entity_id']").inner_text()
        row = detail.locator("table.decisions tr").nth(1).inner_text()
        assert "(checkout_ab)" in row and "(checkout_flow)" in row
        page.click("#detail button.copy")
        assertion = page.inner_text("#detail code.assertion")
        assert 'flag_key="checkout_flow"' in assertion

        page.click("#rows tr >> text=keyless")  # listed under its event key, from the datafile
        assert "purchase" in page.locator("#rows tr", has_text="keyless").inner_text()
        assert '"111095" (purchase)' in page.locator("#detail .event-card").inner_text()
        page.click("#detail button.copy")
        assert page.inner_text("#detail code.assertion").startswith(
            'logx_server.assert_conversion("purchase", visitor_id="keyless"'
        )
        page.fill("#search", "purchase")  # found by the key only the datafile knows
        expect(page.locator("#rows tr")).to_have_count(1)
        assert "keyless" in page.locator("#rows tr").inner_text()
        context.close()


def download(page: Page, link: str, href: str) -> tuple[str, str]:
    """Click a download link once it points at `href`: the file's name and text."""
    expect(page.locator(link)).to_have_attribute("href", href)
    with page.expect_download() as started:
        page.click(link)
    with open(started.value.path(), encoding="ascii") as file:
        return started.value.suggested_filename, file.read()


def test_download_buttons_export_what_the_filters_show(page: Page, server: ThreadedServer) -> None:
    post(server, impression("alice"))
    post(server, impression("bob"))
    requests.post(server.events_url, data=b"{oops", timeout=10)
    expect(page.locator("#rows tr")).to_have_count(3)
    page.fill("#f-visitor", "bob")
    name, text = download(page, "#download-ndjson", "/_mock/export?format=ndjson&visitor_id=bob")
    assert name == "logx-mock-export.ndjson"
    lines = [json.loads(line) for line in text.splitlines()]
    assert [line["body"]["visitors"][0]["visitor_id"] for line in lines] == ["bob"]
    page.fill("#f-visitor", "")
    page.select_option("#f-verdict", "malformed")
    name, text = download(page, "#download-har", "/_mock/export?format=har&verdict=malformed")
    assert name == "logx-mock-export.har"
    entries = json.loads(text)["log"]["entries"]
    assert [entry["_logx_mock"]["verdict"] for entry in entries] == ["malformed"]


ATTACK = """<!doctype html><meta charset="utf-8"><title>another site</title>
<form id="form" method="POST" enctype="text/plain" action="{base}/_mock/datafiles">
<input name='{{"version": "4", "pad": "' value='"}}'></form>
<script>
(async () => {{
  const base = "{base}";
  const plain = (type) => ({{method: "POST", mode: "no-cors", headers: {{"Content-Type": type}},
                             body: '{{"status": 500}}'}});
  for (const [path, type] of [["/_mock/faults", "text/plain"],
                              ["/_mock/faults", "application/x-www-form-urlencoded"],
                              ["/_mock/datafiles", "text/plain"]]) {{
    try {{ await fetch(base + path, plain(type)); }} catch (e) {{}}
  }}
  const form = new FormData();
  form.append("rule", '{{"status": 500}}');
  try {{ await fetch(base + "/_mock/faults", {{method: "POST", mode: "no-cors", body: form}}); }}
  catch (e) {{}}
  try {{ await fetch(base + "/_mock/requests", {{method: "DELETE", mode: "no-cors"}}); }}
  catch (e) {{}}
  const image = new Image();
  image.src = base + "/_mock/events?limit=100000";
  document.getElementById("form").submit();
}})();
</script>"""


@pytest.fixture
def other_site() -> Iterator[Callable[[str], str]]:
    """A page on another origin (http://localhost:PORT; the mock is http://127.0.0.1:PORT):
    another developer server on the laptop, or any site the browser opens."""
    pages: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path, b"")
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()

    def host(html: str) -> str:
        pages["/attack.html"] = html.encode()
        return f"http://localhost:{httpd.server_address[1]}/attack.html"

    yield host
    httpd.shutdown()


def test_another_sites_page_cannot_change_the_mock(
    browser: Browser, server: ThreadedServer, other_site: Callable[[str], str]
) -> None:
    """In a real Chromium, a page of another origin sends the "simple" requests no preflight
    stops (text/plain, a form, multipart), a DELETE, and an image that asks for 100,000
    events: the fault plan, the datafiles and the journal stay as they were."""
    post(server, impression("kept"))
    seen: list[dict[str, str]] = []

    def refused(request: Any) -> None:
        if ("/_mock/" in request.url and request.method != "GET") or "limit=100000" in request.url:
            seen.append(request.headers)

    context = browser.new_context()
    attacker = context.new_page()
    attacker.on("request", refused)
    attacker.goto(other_site(ATTACK.format(base=server.url)))
    attacker.wait_for_url(server.url + "/_mock/datafiles", timeout=10_000)  # the form, last
    context.close()
    assert len(seen) >= 5  # the browser did send them
    assert server.endpoint.faults.describe() == []
    assert not server.endpoint.config.datafiles
    assert [r.id for r in server.endpoint.journal.requests()] == [1]
