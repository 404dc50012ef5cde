"""The CDN's datafile routes, served by the core: over a real socket with requests, by
`serve --datafile` and after an upload, and to the real Optimizely Python SDK."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
import requests
from helpers import DATAFILE

from mockserver import Datafile, Datafiles, Endpoint, EndpointConfig, MemoryJournal, ThreadedServer
from mockserver.cdn import DatafileCdn, datafile_path

KEY = "logx-mock-test"  # the sdkKey of helpers.DATAFILE


def _server(*datafiles: Datafile) -> ThreadedServer:
    config = EndpointConfig(datafiles=Datafiles(datafiles))
    return ThreadedServer(Endpoint(MemoryJournal(), config=config))


@pytest.fixture
def server() -> Iterator[ThreadedServer]:
    with _server(Datafile.load(DATAFILE)) as running:
        yield running


def get(server: ThreadedServer, path: str, **headers: str) -> requests.Response:
    return requests.get(server.url + path, headers=headers, timeout=10)


def test_the_datafile_is_served_byte_for_byte_by_its_sdk_key(server: ThreadedServer) -> None:
    response = get(server, f"/datafiles/{KEY}.json")
    assert response.status_code == 200
    assert response.content == DATAFILE.read_bytes()
    assert response.headers["content-type"] == "application/json"
    assert response.headers["etag"].startswith('"')
    assert response.headers["last-modified"].endswith(" GMT")
    assert response.headers["access-control-allow-origin"] == "*"


def test_the_authenticated_path_needs_a_bearer_token(server: ThreadedServer) -> None:
    path = f"/datafiles/auth/{KEY}.json"
    assert get(server, path, Authorization="Bearer any-token").content == DATAFILE.read_bytes()
    refused = get(server, path)
    assert refused.status_code == 403
    assert refused.json()["detail"] == (
        f"{path} needs 'Authorization: Bearer <datafile access token>' (any token is accepted "
        f"here); without a token, fetch /datafiles/{KEY}.json instead"
    )


def test_an_unknown_key_gets_403_naming_the_keys_served(server: ThreadedServer) -> None:
    response = get(server, "/datafiles/nope.json")
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == (
        f"no datafile with sdkKey 'nope' is loaded (served: '{KEY}'); give the datafile to "
        "logx-mock (pytest: logx(datafile=...) or the logx_datafile ini key; serve --datafile "
        "FILE; or POST it to /_mock/datafiles)"
    )


@pytest.mark.parametrize("path", ["/datafiles/", "/datafiles/a/b.json", f"/datafiles/{KEY}"])
def test_a_path_that_names_no_datafile_gets_403(server: ThreadedServer, path: str) -> None:
    response = get(server, path)
    assert response.status_code == 403
    assert "is not a datafile; SDKs fetch /datafiles/KEY.json" in response.json()["detail"]


def test_only_get_is_allowed(server: ThreadedServer) -> None:
    response = requests.post(server.url + f"/datafiles/{KEY}.json", data=b"{}", timeout=10)
    assert (response.status_code, response.headers["allow"]) == (405, "GET")
    assert server.endpoint.journal.requests() == []  # nothing journaled: not an event batch


def test_other_paths_404_and_name_both_routes(server: ThreadedServer) -> None:
    response = get(server, "/js/12345.json")
    assert response.status_code == 404
    assert response.json()["detail"] == (
        "/js/12345.json is not served; post batches to /v1/events "
        "(datafiles are at /datafiles/{sdk_key}.json)"
    )


def test_if_none_match_and_if_modified_since_get_304(server: ThreadedServer) -> None:
    first = get(server, f"/datafiles/{KEY}.json")
    etag, stamp = first.headers["etag"], first.headers["last-modified"]
    path = f"/datafiles/{KEY}.json"
    not_modified = get(server, path, **{"If-None-Match": f'"other", {etag}'})
    assert (not_modified.status_code, not_modified.content) == (304, b"")
    assert not_modified.headers["etag"] == etag
    assert get(server, path, **{"If-Modified-Since": stamp}).status_code == 304
    # If-None-Match decides when it is there (RFC 9110), even with a matching date.
    assert get(server, path, **{"If-None-Match": '"other"', "If-Modified-Since": stamp}).ok
    older = formatdate(time.time() - 10 * 365 * 86400, usegmt=True)
    assert get(server, path, **{"If-Modified-Since": older}).status_code == 200
    assert get(server, path, **{"If-Modified-Since": "yesterday"}).status_code == 200


def test_a_file_is_last_modified_when_its_file_changed(tmp_path: Path) -> None:
    path = tmp_path / "datafile.json"
    path.write_bytes(DATAFILE.read_bytes())
    with _server(Datafile.load(path)) as running:
        stamp = get(running, f"/datafiles/{KEY}.json").headers["last-modified"]
    assert stamp == formatdate(int(path.stat().st_mtime), usegmt=True)


def test_a_changed_datafile_is_modified_later_even_within_the_same_second() -> None:
    """Pollers send the Last-Modified they got: a change in the same second must still
    be served, so the new content's date is at least a second after the old one."""
    cdn = DatafileCdn(clock=lambda: 1_767_225_600.0)
    first = Datafile.from_json(DATAFILE.read_bytes())
    data = json.loads(DATAFILE.read_text())
    second = Datafile.from_dict({**data, "revision": "43"})
    from mockserver import CoreRequest

    def fetch(datafile: Datafile, **headers: str) -> Any:
        request = CoreRequest("GET", f"/datafiles/{KEY}.json", headers=list(headers.items()))
        return cdn.answer(request, Datafiles((datafile,)))

    old = dict(fetch(first).headers)["last-modified"]
    assert fetch(first, **{"if-modified-since": old}).status == 304
    changed = fetch(second, **{"if-modified-since": old})
    assert changed.status == 200 and json.loads(changed.body)["revision"] == "43"
    assert dict(changed.headers)["last-modified"] == formatdate(1_767_225_601, usegmt=True)


def test_a_file_without_sdk_key_is_served_under_its_stem(tmp_path: Path) -> None:
    data = json.loads(DATAFILE.read_text())
    del data["sdkKey"]
    path = tmp_path / "staging-project.json"
    path.write_text(json.dumps(data))
    with _server(Datafile.load(path)) as running:
        assert get(running, "/datafiles/staging-project.json").json()["revision"] == "42"
        assert get(running, f"/datafiles/{KEY}.json").status_code == 403


def test_the_latest_upload_of_a_key_is_served() -> None:
    with _server() as running:
        assert get(running, f"/datafiles/{KEY}.json").status_code == 403
        data = json.loads(DATAFILE.read_text())
        for revision in ("42", "43"):
            upload = requests.post(
                running.url + "/_mock/datafiles",
                data=json.dumps({**data, "revision": revision}),
                headers={"Content-Type": "application/json"},
                timeout=10,
            )
            assert upload.json()["sdk_key"] == KEY
        assert get(running, f"/datafiles/{KEY}.json").json()["revision"] == "43"
        requests.delete(running.url + "/_mock/datafiles", timeout=10)
        assert get(running, f"/datafiles/{KEY}.json").status_code == 403


def test_serve_datafile_serves_each_file_by_its_sdk_key(serve: Any, tmp_path: Path) -> None:
    other = {**json.loads(DATAFILE.read_text()), "sdkKey": "second-key", "projectId": "222"}
    (tmp_path / "second.json").write_text(json.dumps(other))
    server = serve(
        "--memory", "--datafile", str(DATAFILE), "--datafile", str(tmp_path / "second.json")
    )
    url = server.url
    assert requests.get(f"{url}/datafiles/{KEY}.json", timeout=10).content == DATAFILE.read_bytes()
    assert requests.get(f"{url}/datafiles/second-key.json", timeout=10).json()["projectId"] == "222"
    _, log = server.stop()
    assert f"GET /datafiles/{KEY}.json 200: datafile.json, revision 42" in log


def test_serve_prints_where_each_datafile_is_served(serve: Any) -> None:
    server = serve("--memory", "--datafile", str(DATAFILE))
    assert server.proc.stdout is not None
    server.proc.stdout.readline()  # datafile: ...
    assert server.proc.stdout.readline().strip() == f"served at {server.url}/datafiles/{KEY}.json"


def test_the_python_sdk_polls_with_if_modified_since_and_keeps_its_config_on_304(
    server: ThreadedServer, caplog: pytest.LogCaptureFixture
) -> None:
    """PollingConfigManager sends the Last-Modified it got as If-Modified-Since; on a 304 it
    keeps its config, on a 200 it takes the new one."""
    from optimizely.config_manager import PollingConfigManager

    caplog.set_level(logging.DEBUG)
    manager = PollingConfigManager(
        sdk_key=KEY,
        url_template=server.url + "/datafiles/{sdk_key}.json",
        update_interval=3600,
        logger=logging.getLogger("sdk"),
    )
    try:
        config = manager.get_config()
        assert config is not None and config.revision == "42"
        stamp = manager.last_modified
        assert stamp == get(server, datafile_path(KEY)).headers["last-modified"]
        manager.fetch_datafile()
        assert manager.get_config() is config  # the 304 kept it
        assert "Not updating config as datafile has not updated since" in caplog.text
        data = json.loads(DATAFILE.read_text())
        server.endpoint.use_datafiles(Datafiles((Datafile.from_dict({**data, "revision": "43"}),)))
        manager.fetch_datafile()
        assert manager.get_config().revision == "43"
        assert manager.last_modified != stamp
    finally:
        manager.stop()


def test_the_readmes_datafile_recipe_as_written(serve: Any, tmp_path: Path) -> None:
    """`serve --datafile` prints where the file is served, the README's curl upload makes
    another datafile servable, and its `url_template` line gets it to the Python SDK
    (on a free port instead of 8080)."""
    import re
    import shlex
    import subprocess
    from urllib.parse import urlsplit

    from optimizely.config_manager import PollingConfigManager

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("### Datafiles served to the SDKs", 1)[1].split("\n### ", 1)[0]
    (recipe,) = re.findall(r"```sh\n(.*?)\n```", section, re.S)
    serve_line, upload_line = recipe.splitlines()
    argv = shlex.split(serve_line, comments=True)
    assert argv[:2] == ["logx-mock", "serve"]
    datafile = tmp_path / "datafile.json"
    datafile.write_bytes(DATAFILE.read_bytes())
    server = serve(*[str(datafile) if a == "datafile.json" else a for a in argv[2:]])
    assert server.proc.stdout is not None
    server.proc.stdout.readline()  # datafile: ...
    served_at = re.search(r'prints "(.*)"', serve_line)
    assert served_at is not None
    expected = served_at.group(1).replace("http://127.0.0.1:8080", server.url)
    assert server.proc.stdout.readline().strip() == expected.replace("<sdkKey>", KEY)

    port = str(urlsplit(server.url).port)
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    other = {**json.loads(DATAFILE.read_text()), "sdkKey": "uploaded-key", "revision": "7"}
    (uploads / "datafile.json").write_text(json.dumps(other))
    done = subprocess.run(
        ["bash", "-c", upload_line.replace("8080", port).replace("curl ", "curl -sf ", 1)],
        cwd=uploads,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    fetched = requests.get(f"{server.url}/datafiles/uploaded-key.json", timeout=10)
    assert fetched.content == (uploads / "datafile.json").read_bytes()

    template = re.search(r'url_template="(.*?)"', section)
    assert template is not None
    manager = PollingConfigManager(
        sdk_key="uploaded-key",
        url_template=template.group(1).replace("http://127.0.0.1:8080", server.url),
        update_interval=3600,
    )
    try:
        config = manager.get_config()
        assert config is not None and config.revision == "7"
    finally:
        manager.stop()
