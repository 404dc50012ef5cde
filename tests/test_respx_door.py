"""The respx door's shortcut: an httpx client hands an Optimizely host's request straight to
the logx router when respx would have handed it there anyway, and in every other case
respx's own way is taken, as without the shortcut."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import respx
from helpers import impression

from mockserver import Endpoint, MemoryJournal
from pytest_plugin import logx_router

URL = "https://logx.optimizely.com/v1/events"
ORIGINALS = {
    httpx.Client: httpx.Client.__dict__["_transport_for_url"],
    httpx.AsyncClient: httpx.AsyncClient.__dict__["_transport_for_url"],
}


def shortcut(response: httpx.Response, router: respx.MockRouter) -> bool:
    """Whether the router got the client's own request: respx's mocker hands the router
    a request it rebuilt from httpcore's."""
    return router.calls.last.request is response.request


def test_a_plain_client_is_answered_through_the_shortcut_with_the_call_recorded() -> None:
    endpoint = Endpoint(MemoryJournal())
    batch = impression()
    with logx_router(endpoint) as router, httpx.Client() as client:
        first = client.post(URL, json=batch)
        assert first.status_code == 204 and first.content == b""
        assert first.headers["access-control-allow-origin"] == "*"
        assert shortcut(first, router)
        again = client.post(URL, json=batch)  # the same event again: a duplicate
        assert shortcut(again, router) and router.calls.last.response is again
        assert router["logx"].call_count == 2
        endpoint.faults.add(reset=True, times=1)
        with pytest.raises(httpx.ReadError):
            client.post(URL, json=impression())
        assert router["logx"].call_count == 3 and router.calls.last.optional_response is None
    journal = endpoint.journal.requests()
    assert [r.status for r in journal] == [204, 204, 0]  # 0: the reset, no answer
    assert [e.duplicate for r in journal[:2] for e in r.events] == [False, True]
    assert [w.rule for w in journal[1].warnings] == ["duplicate_event"]


def test_an_async_client_is_answered_through_the_shortcut() -> None:
    endpoint = Endpoint(MemoryJournal())

    async def post() -> None:
        with logx_router(endpoint) as router:
            async with httpx.AsyncClient() as client:
                response = await client.post(URL, json=impression())
            assert response.status_code == 204 and router["logx"].call_count == 1
            assert shortcut(response, router)

    asyncio.run(post())
    assert len(endpoint.journal.requests()) == 1


def test_a_client_with_a_transport_of_its_own_keeps_it() -> None:
    """A transport the client was given (a MockTransport, a subclass of httpx's) is used
    as without the shortcut: the MockTransport answers; the subclass runs, and its request
    reaches the router through respx's mocker."""
    endpoint = Endpoint(MemoryJournal())
    sent: list[httpx.Request] = []

    class Counting(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            sent.append(request)
            return super().handle_request(request)

    own = httpx.MockTransport(lambda request: httpx.Response(418))
    with logx_router(endpoint) as router:
        with httpx.Client(transport=own) as client:
            assert client.post(URL, json=impression()).status_code == 418
        with httpx.Client(transport=Counting()) as client:
            response = client.post(URL, json=impression())
        assert response.status_code == 204 and len(sent) == 1
        assert router["logx"].call_count == 1 and not shortcut(response, router)
    assert len(endpoint.journal.requests()) == 1


def test_a_router_respx_asks_first_answers_first() -> None:
    """A user's respx router started before the logx router gets the Optimizely hosts'
    requests first, as respx orders routers; one started after it does not."""
    endpoint = Endpoint(MemoryJournal())
    with respx.mock(assert_all_called=False) as users:
        users.post(URL).respond(202)
        with logx_router(endpoint) as router, httpx.Client() as client:
            assert client.post(URL, json=impression()).status_code == 202
            assert router["logx"].call_count == 0
    later = respx.mock(assert_all_called=False)
    with logx_router(endpoint) as router, later as users, httpx.Client() as client:
        users.post(URL).respond(202)
        users.get("https://api.example.test/flags").respond(json={"on": True})
        response = client.post(URL, json=impression())
        assert response.status_code == 204 and shortcut(response, router)
        assert client.get("https://api.example.test/flags").json() == {"on": True}
    assert len(endpoint.journal.requests()) == 1


def test_a_route_the_user_mocked_answers_through_respx() -> None:
    endpoint = Endpoint(MemoryJournal())
    with logx_router(endpoint) as router, httpx.Client() as client:
        router["logx"].respond(418)
        response = client.post(URL, json=impression())
        assert response.status_code == 418 and not shortcut(response, router)
        router["logx"].mock(return_value=None)  # the route answers itself again
        response = client.post(URL, json=impression())
        assert response.status_code == 204 and shortcut(response, router)
    assert len(endpoint.journal.requests()) == 1


def test_nested_routers_answer_as_respx_orders_them_and_the_clients_are_restored() -> None:
    outer, inner = Endpoint(MemoryJournal()), Endpoint(MemoryJournal())
    with logx_router(outer) as first, httpx.Client() as client:
        with logx_router(inner):
            assert shortcut(client.post(URL, json=impression()), first)
        assert shortcut(client.post(URL, json=impression()), first)
    assert len(outer.journal.requests()) == 2 and inner.journal.requests() == []
    for client_class, original in ORIGINALS.items():
        assert client_class.__dict__["_transport_for_url"] is original


def test_a_patch_put_over_the_shortcut_is_left_in_place() -> None:
    """respx's `httpx` mocker patches the same client method: stopped out of order, each
    leaves the other's patch working, and the last stop of a logx router restores httpx."""
    endpoint = Endpoint(MemoryJournal())
    theirs = respx.mock(using="httpx", assert_all_called=False)
    theirs.get("https://api.example.test/flags").respond(json={"on": True})
    ours = logx_router(endpoint)
    ours.start()
    theirs.start()
    ours.stop()  # theirs still in force
    with httpx.Client() as client:
        assert client.get("https://api.example.test/flags").json() == {"on": True}
    theirs.stop()  # puts back the (now idle) shortcut it found
    with logx_router(endpoint) as router, httpx.Client() as client:
        assert shortcut(client.post(URL, json=impression()), router)
    for client_class, original in ORIGINALS.items():
        assert client_class.__dict__["_transport_for_url"] is original
