"""`serve --tls`: HTTPS with a certificate for Optimizely's hosts, checked by real clients
(curl, Python's `ssl`, requests) against the logx-mock CA, and nothing else."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import yaml
from helpers import impression

from mockserver.serve.ca import CA_CERT, OPTIMIZELY_HOSTS
from mockserver.serve.cli import build_parser, main

LOGX_HOSTS = ("logx.optimizely.com", "eu.logx.optimizely.com")


def https_post(port: int, name: str, cafile: Path, body: bytes) -> tuple[int, bytes]:
    """POST /v1/events over TLS to 127.0.0.1:port as `name`, with Python's `ssl` checking it."""
    context = ssl.create_default_context(cafile=str(cafile))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        head = (
            f"POST /v1/events HTTP/1.1\r\nHost: {name}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        tls.sendall(head.encode() + body)
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
    status = int(answer.split(b" ", 2)[1])
    return status, answer.partition(b"\r\n\r\n")[2]


@pytest.fixture
def tls_server(serve: Any, tmp_path: Path) -> Any:
    server = serve("--memory", "--tls", "--ca-dir", str(tmp_path / "ca"))
    server.cafile = tmp_path / "ca" / CA_CERT
    server.port = urlsplit(server.url).port
    return server


def test_python_ssl_verifies_both_logx_hosts_and_the_batches_are_journaled(tls_server: Any) -> None:
    assert tls_server.banner.startswith("logx-mock listening on https://127.0.0.1:")
    assert tls_server.ca_line.startswith(f"CA: {tls_server.cafile} (made now; ")
    for name in LOGX_HOSTS:
        batch = json.dumps(impression(f"visitor@{name}")).encode()
        assert https_post(tls_server.port, name, tls_server.cafile, batch) == (204, b"")
    journal = requests.get(
        tls_server.url + "/_mock/requests", verify=str(tls_server.cafile), timeout=10
    ).json()
    assert [r["host"] for r in journal["requests"]] == list(LOGX_HOSTS)


def test_curl_verifies_both_logx_hosts_against_ca_pem(tls_server: Any) -> None:
    curl = shutil.which("curl")
    assert curl, "the TLS tests need curl; tests/run.sh installs it"
    for name in LOGX_HOSTS:
        done = subprocess.run(
            [
                curl,
                "-sS",
                "--fail-with-body",
                "--cacert",
                str(tls_server.cafile),
                "--resolve",
                f"{name}:{tls_server.port}:127.0.0.1",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{ssl_verify_result}",
                "-H",
                "content-type: application/json",
                "--data-binary",
                json.dumps(impression()),
                f"https://{name}:{tls_server.port}/v1/events",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert (done.returncode, done.stdout) == (0, "204 0"), done.stderr


def test_a_name_the_certificate_does_not_carry_is_refused_by_name(tls_server: Any) -> None:
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        https_post(tls_server.port, "www.optimizely.com", tls_server.cafile, b"{}")
    done = subprocess.run(
        [
            "curl",
            "-sS",
            "--cacert",
            str(tls_server.cafile),
            "--resolve",
            f"api.optimizely.com:{tls_server.port}:127.0.0.1",
            f"https://api.optimizely.com:{tls_server.port}/v1/events",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 60
    assert "no alternative certificate subject name matches target host name" in done.stderr
    journal = requests.get(
        tls_server.url + "/_mock/requests", verify=str(tls_server.cafile), timeout=10
    ).json()
    assert journal["requests"] == []


def test_a_client_that_does_not_trust_the_ca_is_refused(tls_server: Any, tmp_path: Path) -> None:
    with pytest.raises(requests.exceptions.SSLError, match="certificate verify failed"):
        requests.post(tls_server.events_url, json=impression(), timeout=10)
    other_ca = tmp_path / "other"
    assert main(["ca", "--ca-dir", str(other_ca)]) == 0
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        https_post(tls_server.port, "logx.optimizely.com", other_ca / CA_CERT, b"{}")


def test_loopback_names_are_in_the_certificate_too(tls_server: Any) -> None:
    for name in ("localhost", "127.0.0.1"):
        status, body = https_post(tls_server.port, name, tls_server.cafile, b"{not json")
        assert status == 400
        assert json.loads(body)["title"] == "Body is not a JSON object"


def test_tls_with_workers_serves_https_from_every_worker(serve: Any, tmp_path: Path) -> None:
    server = serve(
        "--db", str(tmp_path / "j.db"), "--tls", "--workers", "2", "--ca-dir", str(tmp_path)
    )
    server.cafile = tmp_path / CA_CERT
    for i in range(6):
        response = requests.post(
            server.events_url, json=impression(f"w{i}"), verify=str(server.cafile), timeout=10
        )
        assert response.status_code == 204
    code, _ = server.stop()
    assert code == 0


def test_the_events_command_reads_a_tls_server_trusting_the_ca_by_ssl_cert_file(
    tls_server: Any,
) -> None:
    batch = json.dumps(impression("tls-events")).encode()
    assert https_post(tls_server.port, "localhost", tls_server.cafile, batch)[0] == 204
    command = [sys.executable, "-m", "mockserver", "events", "--url", tls_server.url, "--json"]
    env = {**os.environ, "SSL_CERT_FILE": str(tls_server.cafile)}
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["visitor_id"] == "tls-events"


def test_the_readmes_compose_recipe_names_the_certificates_hosts_and_real_options() -> None:
    """The recipe is not run (no Docker here), but it parses, its aliases are the names the
    certificate carries, and its commands are ones `logx-mock` accepts."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    (recipe,) = [b for b in re.findall(r"```yaml\n(.*?)```", readme, re.S) if "aliases:" in b]
    compose = yaml.safe_load(recipe)
    mock = compose["services"]["logx-mock"]
    assert mock["networks"]["default"]["aliases"] == list(OPTIMIZELY_HOSTS)
    for command in mock["command"].removeprefix("sh -c ").strip('"').split(" && "):
        argv = shlex.split(command)
        assert argv[0] == "logx-mock"
        build_parser().parse_args(argv[1:])  # exits (SystemExit) on an unknown option
    assert "/ca/ca.pem" in compose["services"]["app"]["environment"]["NODE_EXTRA_CA_CERTS"]


def test_the_dockerfile_the_compose_recipe_builds_copies_what_pip_install_reads() -> None:
    """The recipe's `build: .` needs a Dockerfile at the root. It is not built here (no
    Docker daemon); its COPY lines must hold what pyproject.toml makes `pip install .` read
    (the readme, every package it finds), its Python must satisfy requires-python, and its
    default command must be one `logx-mock` accepts."""
    import tomllib

    root = Path(__file__).parent.parent
    readme = (root / "README.md").read_text()
    (recipe,) = [b for b in re.findall(r"```yaml\n(.*?)```", readme, re.S) if "aliases:" in b]
    assert yaml.safe_load(recipe)["services"]["logx-mock"]["build"] == "."
    dockerfile = (root / "Dockerfile").read_text()
    project = tomllib.loads((root / "pyproject.toml").read_text())
    copied = {
        source
        for line in dockerfile.splitlines()
        if line.startswith("COPY ")
        for source in line.split()[1:-1]
    }
    packages = project["tool"]["setuptools"]["packages"]["find"]["include"]
    needed = {"pyproject.toml", project["project"]["readme"]}
    needed |= {pattern.rstrip("*") for pattern in packages}
    assert needed <= copied, needed - copied
    assert all((root / source).exists() for source in copied)
    assert "RUN pip install --no-cache-dir ." in dockerfile
    (image,) = re.findall(r"^FROM python:(\d+)\.(\d+)-slim$", dockerfile, re.M)
    lowest = re.fullmatch(r">=(\d+)\.(\d+)", project["project"]["requires-python"])
    assert lowest and tuple(map(int, image)) >= tuple(map(int, lowest.groups()))
    (command,) = re.findall(r"^CMD (\[.*\])$", dockerfile, re.M)
    argv = json.loads(command)
    assert argv[0] == "logx-mock"
    build_parser().parse_args(argv[1:])
