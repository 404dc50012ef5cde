"""The admin routes and the OpenAPI document come from one list of operations, so they
cannot drift apart: every documented operation is served, and one route per path lists
all of its methods when asked for another."""

from __future__ import annotations

import requests
from helpers import impression

from mockserver import ThreadedServer
from mockserver.web.admin.routes import OPERATIONS, openapi_document
from mockserver.web.guard import ADMIN_PREFIX

_SAMPLE = {"{request_id}": "1", "{name}": "inspector.css"}


def _url(server: ThreadedServer, path: str) -> str:
    for placeholder, value in _SAMPLE.items():
        path = path.replace(placeholder, value)
    return server.url + ADMIN_PREFIX + path


def test_the_document_lists_every_operation_that_has_a_fragment() -> None:
    paths = openapi_document()["paths"]
    for op in OPERATIONS:
        documented = op.method.lower() in paths.get(ADMIN_PREFIX + op.path, {})
        assert documented == (op.spec is not None), (op.method, op.path)
    assert {op.path for op in OPERATIONS if op.spec is None} == {"/static/{name}"}


def test_every_operation_is_served(sqlite_server: ThreadedServer) -> None:
    requests.post(sqlite_server.events_url, json=impression("v1"), timeout=10)  # request 1
    for op in sorted(OPERATIONS, key=lambda op: op.method == "DELETE"):  # resets last
        if op.path == "/stream":
            continue  # endless; tests/test_inspector.py reads it
        response = requests.request(op.method, _url(sqlite_server, op.path), timeout=10)
        assert response.status_code not in (404, 405), (op.method, op.path, response.text)


def test_a_method_a_path_lacks_gets_405_listing_all_of_its_methods(
    sqlite_server: ThreadedServer,
) -> None:
    response = requests.patch(_url(sqlite_server, "/faults"), timeout=10)
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "POST", "PUT", "DELETE"}
