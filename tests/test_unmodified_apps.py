"""Apps that know nothing of logx-mock, caught out of process with no code change.

- The real Optimizely Python SDK (tests/apps/python_sdk_app.py), in a subprocess whose only
  settings are `HTTPS_PROXY` and `REQUESTS_CA_BUNDLE`, through `serve --proxy-port`.
- The real Optimizely JavaScript SDK under Node (tests/js_sdk/app.js), through `serve --tls` on
  port 443 inside a network namespace whose hosts file sends Optimizely's names to the mock,
  trusting the CA with `NODE_EXTRA_CA_CERTS`. (Its Node request handler calls `https.request`
  without an agent, so it ignores `HTTPS_PROXY`: the name override is the way in for it.)
  The namespace has no network but its own loopback: nothing can leave it.

Both fetch their datafile by SDK key from the mock (`serve --datafile`) and send their events
to it; the test reads the mock's journal.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from helpers import DATAFILE

from mockserver import DATAFILE_RULES, SqliteJournal
from mockserver.serve.ca import CA_CERT, OPTIMIZELY_HOSTS

HERE = Path(__file__).parent
SDK_KEY = json.loads(DATAFILE.read_text())["sdkKey"]


def check_caught(db: Path, log: str, decided: dict[str, Any], visitor: str) -> None:
    """The app fetched its datafile from the mock, and its impression (of the variation it
    decided) and its conversion were journaled, accepted, with no datafile warning."""
    assert f"GET /datafiles/{SDK_KEY}.json 200" in log
    journal = SqliteJournal(db)
    try:
        records = journal.requests(limit=1000)
    finally:
        journal.close()
    assert records, log
    for record in records:
        assert (record.host, record.verdict, record.client_ip) == (
            "logx.optimizely.com",
            "accepted",
            "127.0.0.0",  # the app's own address (anonymized, as the SDK asked)
        )
        assert [w.rule for w in record.warnings if w.rule in DATAFILE_RULES] == []
    events = [event for record in records for event in record.events]
    (impression,) = [e for e in events if e.kind == "impression"]
    assert impression.visitor_id == visitor
    assert impression.decision_keys[0]["flag_key"] == decided["flag"] == "checkout_flow"
    assert impression.decision_keys[0]["variation_key"] == decided["variation"]
    (purchase,) = [e for e in events if e.kind == "conversion"]
    assert (purchase.key, purchase.revenue, purchase.visitor_id) == ("purchase", 4200, visitor)


def test_python_sdk_app_with_only_https_proxy_and_ca_bundle(serve: Any, tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    server = serve(
        "--db", str(db), "--datafile", str(DATAFILE), "--proxy-port", "0",
        "--ca-dir", str(tmp_path / "ca"),
    )  # fmt: skip
    env = {"HTTPS_PROXY": server.proxy_url, "REQUESTS_CA_BUNDLE": str(tmp_path / "ca" / CA_CERT)}
    done = subprocess.run(
        [sys.executable, str(HERE / "apps" / "python_sdk_app.py"), SDK_KEY],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    code, log = server.stop()
    assert code == 0
    check_caught(db, log, json.loads(done.stdout), "py-app-user")


# The JavaScript SDK in a network namespace ------------------------------------------------


@pytest.fixture
def netns() -> Iterator[str]:
    """A fresh network namespace: loopback only, with Optimizely's names on 127.0.0.1."""
    ip = shutil.which("ip")
    if ip is None or os.geteuid() != 0:
        pytest.fail(
            "this test runs the JavaScript SDK in a network namespace: it needs root and "
            "`ip` (iproute2; tests/run.sh installs it, and CI runs as root)"
        )
    name = f"logxmock{os.getpid()}"
    hosts = Path("/etc/netns") / name
    added = subprocess.run([ip, "netns", "add", name], capture_output=True, text=True)
    if added.returncode != 0:
        pytest.fail(
            f"`ip netns add {name}` failed ({added.stderr.strip()}): this test needs root with "
            "CAP_SYS_ADMIN (in a container: --privileged), as CI has"
        )
    try:
        hosts.mkdir(parents=True)
        names = " ".join(OPTIMIZELY_HOSTS)
        (hosts / "hosts").write_text(f"127.0.0.1 localhost {names}\n")
        subprocess.run([ip, "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run([ip, "netns", "delete", name], check=False)
        shutil.rmtree(hosts, ignore_errors=True)


def test_js_sdk_app_in_a_namespace_where_the_names_resolve_to_the_mock(
    serve: Any, netns: str, tmp_path: Path
) -> None:
    node = shutil.which("node")
    assert node, "the JavaScript SDK tests need Node.js; tests/run.sh installs it"
    assert (HERE / "js_sdk" / "node_modules" / "@optimizely" / "optimizely-sdk").is_dir(), (
        "run `npm ci --prefix tests/js_sdk` (tests/run.sh does)"
    )
    inside = ["ip", "netns", "exec", netns]
    db = tmp_path / "j.db"
    server = serve(
        "--db", str(db), "--datafile", str(DATAFILE), "--tls", "--port", "443",
        "--ca-dir", str(tmp_path / "ca"), prefix=inside,
    )  # fmt: skip
    assert urlsplit(server.url).port == 443
    done = subprocess.run(
        [*inside, node, str(HERE / "js_sdk" / "app.js"), SDK_KEY],
        env={"PATH": os.environ["PATH"], "NODE_EXTRA_CA_CERTS": str(tmp_path / "ca" / CA_CERT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr + server.read_log()
    code, log = server.stop()
    assert code == 0
    check_caught(db, log, json.loads(done.stdout), "js-app-user")
    # Nothing but the mock is reachable in there: the real host cannot be, by address either.
    escape = subprocess.run(
        [*inside, node, "-e", "require('https').get('https://1.1.1.1/', () => {})"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert escape.returncode != 0
    assert "ENETUNREACH" in escape.stderr


# The README's recipes, as written ---------------------------------------------------------

README = (HERE.parent / "README.md").read_text()
SECTION = README.split("### Catching an unmodified app", 1)[1].split("\n### ", 1)[0]


def _sh_blocks(text: str) -> list[list[str]]:
    """The lines of each ```sh block of `text`, comment lines left out."""
    blocks = re.findall(r"```sh\n(.*?)\n```", text, re.S)
    return [[line for line in b.splitlines() if not line.startswith("#")] for b in blocks]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_readmes_proxy_recipe_as_written_catches_the_python_sdk_app(tmp_path: Path) -> None:
    """`logx-mock ca`, then `logx-mock serve --proxy-port 8081 --datafile datafile.json` and
    the app with the README's two variables, in a fresh home (so `~/.logx-mock` is the
    default CA folder); only the ports are changed (free ones) and `python` is this one."""
    (ca_line,), (serve_line, app_line) = _sh_blocks(SECTION)[:2]
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(DATAFILE, tmp_path / "datafile.json")
    shutil.copy(HERE / "apps" / "python_sdk_app.py", tmp_path / "app.py")
    env = {"HOME": str(home), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    made = subprocess.run(
        ["bash", "-c", ca_line], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert made.returncode == 0, made.stderr
    assert made.stdout.splitlines()[0] == str(home / ".logx-mock" / "ca.pem")

    proxy_port = str(_free_port())
    serve_line = serve_line.replace("8081", proxy_port).replace(" serve ", " serve --port 0 ")
    with open(tmp_path / "serve.log", "w+") as log:
        server = subprocess.Popen(
            ["bash", "-c", f"exec {serve_line}"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        try:
            assert server.stdout is not None
            banner = [server.stdout.readline() for _ in range(4)]
            assert f"proxy: http://127.0.0.1:{proxy_port} " in banner[3], banner
            app_line = app_line.replace("8081", proxy_port)
            app_line = app_line.replace("python app.py", f"{sys.executable} app.py {SDK_KEY}")
            done = subprocess.run(
                ["bash", "-c", app_line],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, done.stderr
        finally:
            server.send_signal(signal.SIGINT)
            server.communicate(timeout=30)
        log.seek(0)
        check_caught(tmp_path / "logx-mock.db", log.read(), json.loads(done.stdout), "py-app-user")


def test_the_readmes_tls_recipe_is_a_command_serve_accepts() -> None:
    """The `--tls` recipe needs port 443 and a hosts file (the namespace test above runs
    it so); here its command line is checked against the parser, and its hosts line
    names every host the certificate carries."""
    from mockserver.serve.cli import build_parser

    (serve_line, app_line) = _sh_blocks(SECTION)[2]
    argv = shlex.split(serve_line, comments=True)
    assert argv[:2] == ["sudo", "logx-mock"]
    args = build_parser().parse_args(argv[2:])
    assert (args.tls, args.port, args.ca_dir) == (True, 443, "~/.logx-mock")
    hosts = re.search(r"^# 127\.0\.0\.1 (.*)$", SECTION, re.M)
    assert hosts and set(hosts.group(1).split()) == set(OPTIMIZELY_HOSTS)
    assert app_line == "NODE_EXTRA_CA_CERTS=~/.logx-mock/ca.pem node app.js"
