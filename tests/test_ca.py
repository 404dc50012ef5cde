"""`logx-mock ca`: the local CA is made once, kept private, reused, and refused when broken."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from mockserver.serve.ca import (
    CA_CERT,
    CA_KEY,
    SERVED_NAMES,
    CAError,
    CertificateAuthority,
    default_ca_dir,
)
from mockserver.serve.cli import main


def run_ca(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mockserver", "ca", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_ca_is_made_once_with_a_private_key_and_says_how_to_trust_it(tmp_path: Path) -> None:
    folder = tmp_path / "ca"
    first = run_ca("--ca-dir", str(folder))
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    pem = folder / CA_CERT
    assert lines[0] == str(pem)
    assert "(made now, valid until " in lines[1]
    for hint in (
        f"REQUESTS_CA_BUNDLE={pem}",
        f"SSL_CERT_FILE={pem}",
        f"NODE_EXTRA_CA_CERTS={pem}",
        f"curl --cacert {pem}",
        f"keytool -importcert -noprompt -alias logx-mock -file {pem}",
        "-Djavax.net.ssl.trustStore=logx-mock.jks",
        "HTTPS_PROXY=http://127.0.0.1:8081",
        "serve --tls --port 443",
    ):
        assert hint in first.stdout, hint
    assert stat.S_IMODE((folder / CA_KEY).stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    made = pem.read_bytes(), (folder / CA_KEY).read_bytes()

    second = run_ca("--ca-dir", str(folder))
    assert second.returncode == 0
    assert second.stdout.splitlines()[0] == str(pem)
    assert "(made earlier, valid until " in second.stdout
    assert (pem.read_bytes(), (folder / CA_KEY).read_bytes()) == made

    certificate = x509.load_pem_x509_certificate(made[0])
    assert certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_the_default_folder_is_logx_mock_home_or_the_home_directory(tmp_path: Path) -> None:
    assert default_ca_dir({"LOGX_MOCK_HOME": str(tmp_path)}) == tmp_path
    assert default_ca_dir({}) == Path.home() / ".logx-mock"
    env = {**os.environ, "LOGX_MOCK_HOME": str(tmp_path / "home")}
    done = run_ca(env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == str(tmp_path / "home" / CA_CERT)
    assert (tmp_path / "home" / CA_KEY).exists()


def test_a_corrupt_ca_is_refused_with_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ca", "--ca-dir", str(tmp_path)]) == 0
    (tmp_path / CA_CERT).write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n")
    capsys.readouterr()
    assert main(["ca", "--ca-dir", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert f"the logx-mock CA in {tmp_path} cannot be read" in error
    assert f"delete {tmp_path / CA_CERT} and {tmp_path / CA_KEY}, run `logx-mock ca`" in error


def test_a_key_that_is_not_the_certificates_is_refused(tmp_path: Path) -> None:
    CertificateAuthority.ensure(tmp_path / "a")
    CertificateAuthority.ensure(tmp_path / "b")
    (tmp_path / "a" / CA_KEY).write_bytes((tmp_path / "b" / CA_KEY).read_bytes())
    with pytest.raises(CAError, match=r"ca-key.pem is not the key of .*ca.pem; delete"):
        CertificateAuthority.load(tmp_path / "a")


def test_half_a_ca_is_refused(tmp_path: Path) -> None:
    CertificateAuthority.ensure(tmp_path)
    (tmp_path / CA_KEY).unlink()
    with pytest.raises(CAError, match="cannot be read"):
        CertificateAuthority.ensure(tmp_path)


def test_an_expired_ca_is_refused_by_ca_and_by_serve(tmp_path: Path) -> None:
    CertificateAuthority._create(tmp_path, days=0)  # valid until an hour ago
    done = run_ca("--ca-dir", str(tmp_path))
    assert done.returncode == 2
    assert f"the logx-mock CA in {tmp_path} expired on " in done.stderr
    assert "run `logx-mock ca` to make a new CA, and trust the new ca.pem" in done.stderr
    for option in ("--tls", "--proxy-port=0"):
        serve = subprocess.run(
            [
                sys.executable,
                "-m",
                "mockserver",
                "serve",
                "--memory",
                "--port",
                "0",
                option,
                "--ca-dir",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert serve.returncode == 2, option
        assert "expired on" in serve.stderr
        assert serve.stdout == ""  # refused before listening


def test_a_folder_that_cannot_be_made_says_how_to_choose_another(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(CAError, match=r"cannot make the CA's folder .* pass --ca-dir DIR or set"):
        CertificateAuthority.ensure(blocker / "ca")


def test_missing_ca_is_named_on_load(tmp_path: Path) -> None:
    with pytest.raises(CAError, match=r"no logx-mock CA in .*: run `logx-mock ca --ca-dir"):
        CertificateAuthority.load(tmp_path)


def test_a_leaf_names_every_served_host_and_is_signed_by_the_ca(tmp_path: Path) -> None:
    ca, made = CertificateAuthority.ensure(tmp_path / "ca")
    assert made
    leaf_files = ca.issue(tmp_path)
    assert stat.S_IMODE(leaf_files.keyfile.stat().st_mode) == 0o600
    leaf = x509.load_pem_x509_certificate(leaf_files.certfile.read_bytes())
    leaf.verify_directly_issued_by(ca.certificate)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(n.value) for n in names] == list(SERVED_NAMES)
    assert leaf.not_valid_after_utc <= ca.expires
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert "valid until" in repr(ca)
