"""The local certificate authority behind `serve --tls` and `serve --proxy-port`.

`logx-mock ca` makes it once: an EC P-256 key (`ca-key.pem`, mode 0600) and a
self-signed certificate (`ca.pem`, ten years) in `~/.logx-mock/` (or
`$LOGX_MOCK_HOME`, or `--ca-dir`). The app under test trusts `ca.pem`; the server
then issues itself a fresh leaf certificate at every start, for Optimizely's
hosts and this machine's loopback names, signed by that CA. The leaf's key lives
only in a private temporary folder for the life of the server.

The certificates are built with `cryptography`, never by hand.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import ssl
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..cdn import DATAFILE_HOSTS
from ..errors import CAError

__all__ = [
    "CA_CERT",
    "CA_KEY",
    "HOME_ENV",
    "OPTIMIZELY_HOSTS",
    "SERVED_NAMES",
    "CAError",
    "CertificateAuthority",
    "LeafFiles",
    "ServerCertificate",
    "default_ca_dir",
    "trust_instructions",
]

HOME_ENV = "LOGX_MOCK_HOME"
CA_CERT = "ca.pem"
CA_KEY = "ca-key.pem"
OPTIMIZELY_HOSTS = ("logx.optimizely.com", "eu.logx.optimizely.com", *DATAFILE_HOSTS)
"""The hosts an Optimizely SDK talks to: the Log Endpoint (US, EU) and the datafile CDN."""
SERVED_NAMES = (*OPTIMIZELY_HOSTS, "localhost", "127.0.0.1", "::1")
"""Every name the server's leaf certificate is valid for."""

_CA_DAYS = 3650
_LEAF_DAYS = 397  # the longest lifetime every TLS client accepts
_SKEW = datetime.timedelta(hours=1)  # a client whose clock runs a little behind still accepts
_COMMON_NAME = "logx-mock local CA"


def default_ca_dir(environ: Mapping[str, str] | None = None) -> Path:
    """`$LOGX_MOCK_HOME` if set, else `~/.logx-mock`."""
    env = os.environ if environ is None else environ
    home = env.get(HOME_ENV)
    return Path(home).expanduser() if home else Path.home() / ".logx-mock"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _remake_hint(directory: Path) -> str:
    return (
        f"delete {directory / CA_CERT} and {directory / CA_KEY}, run `logx-mock ca` to make a new "
        "CA, and trust the new ca.pem in the app under test"
    )


@dataclass(frozen=True)
class LeafFiles:
    """A leaf certificate and its key, as files for `ssl` (the CA is the client's to trust,
    so it is not sent)."""

    certfile: Path
    keyfile: Path

    def server_context(self) -> ssl.SSLContext:
        """A server-side TLS context presenting this leaf."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.certfile, self.keyfile)
        context.set_alpn_protocols(["http/1.1"])
        return context


class CertificateAuthority:
    """A CA certificate and its key, loaded from (or made in) a folder."""

    def __init__(
        self, directory: Path, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey
    ) -> None:
        self.directory = directory
        self.certificate = certificate
        self.key = key

    def __repr__(self) -> str:
        return f"<CertificateAuthority {self.cert_path} valid until {self.expires:%Y-%m-%d}>"

    @property
    def cert_path(self) -> Path:
        """The file an app under test must trust."""
        return self.directory / CA_CERT

    @property
    def expires(self) -> datetime.datetime:
        return self.certificate.not_valid_after_utc

    @classmethod
    def ensure(cls, directory: Path) -> tuple[CertificateAuthority, bool]:
        """The CA in `directory`, made there first if it has none; and whether it was made."""
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise CAError(
                f"cannot make the CA's folder {directory} ({exc.strerror}): pass --ca-dir DIR "
                f"or set {HOME_ENV} to a folder you can write"
            ) from exc
        with _locked(directory):
            if (directory / CA_CERT).exists() or (directory / CA_KEY).exists():
                return cls.load(directory), False
            return cls._create(directory), True

    @classmethod
    def load(cls, directory: Path) -> CertificateAuthority:
        """The CA `logx-mock ca` made in `directory`; `CAError` if missing, broken or expired."""
        cert_path, key_path = directory / CA_CERT, directory / CA_KEY
        if not cert_path.exists() and not key_path.exists():
            raise CAError(
                f"no logx-mock CA in {directory}: run `logx-mock ca --ca-dir {directory}` first"
            )
        try:
            certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise CAError(
                f"the logx-mock CA in {directory} cannot be read ({exc}); {_remake_hint(directory)}"
            ) from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey) or (
            key.public_key() != certificate.public_key()
        ):
            raise CAError(f"{key_path} is not the key of {cert_path}; {_remake_hint(directory)}")
        ca = cls(directory, certificate, key)
        ca.check_valid()
        return ca

    def check_valid(self, at: datetime.datetime | None = None) -> None:
        """`CAError` unless the CA certificate is valid now (or `at`)."""
        moment = at or _now()
        if moment > self.expires:
            raise CAError(
                f"the logx-mock CA in {self.directory} expired on {self.expires:%Y-%m-%d}; "
                f"{_remake_hint(self.directory)}"
            )
        if moment < self.certificate.not_valid_before_utc:
            raise CAError(
                f"the logx-mock CA in {self.directory} is not valid before "
                f"{self.certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC: check this "
                f"machine's clock, or {_remake_hint(self.directory)}"
            )

    @classmethod
    def _create(cls, directory: Path, *, days: int = _CA_DAYS) -> CertificateAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _COMMON_NAME)])
        start = _now() - _SKEW
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        _write_private(directory / CA_KEY, _key_pem(key))
        (directory / CA_CERT).write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return cls(directory, certificate, key)

    def issue(self, folder: Path, names: Sequence[str] = SERVED_NAMES) -> LeafFiles:
        """Sign a fresh leaf for `names` and write it (and its 0600 key) into `folder`."""
        self.check_valid()
        key = ec.generate_private_key(ec.SECP256R1())
        start = _now() - _SKEW
        end = min(start + datetime.timedelta(days=_LEAF_DAYS), self.expires)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), False
            )
            .sign(self.key, hashes.SHA256())
        )
        files = LeafFiles(folder / "leaf.pem", folder / "leaf-key.pem")
        _write_private(files.keyfile, _key_pem(key))
        files.certfile.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return files


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_private(path: Path, data: bytes) -> None:
    """Write a key readable by its owner only (0600 from the first byte, whatever the umask)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Two `logx-mock` runs starting at once make one CA, not two halves of two."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; a race there needs two first runs at once
        yield
        return
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def trust_instructions(ca: CertificateAuthority, made: bool) -> str:
    """What `logx-mock ca` prints: the path of `ca.pem` first, then how each client trusts it."""
    path = ca.cert_path
    state = "made now" if made else "made earlier"
    java = "-keystore logx-mock.jks -storepass changeit"
    return "\n".join(
        [
            str(path),
            f"The logx-mock CA ({state}, valid until {ca.expires:%Y-%m-%d}). "
            "Trust it in the app under test:",
            f"  Python requests (Optimizely SDK)  REQUESTS_CA_BUNDLE={path}",
            f"  Python ssl, httpx, urllib         SSL_CERT_FILE={path}",
            f"  Node.js                           NODE_EXTRA_CA_CERTS={path}",
            f"  Go                                SSL_CERT_FILE={path}",
            f"  curl                              curl --cacert {path} URL",
            f"  Java    keytool -importcert -noprompt -alias logx-mock -file {path} {java}",
            "          java -Djavax.net.ssl.trustStore=logx-mock.jks "
            "-Djavax.net.ssl.trustStorePassword=changeit ...",
            "(REQUESTS_CA_BUNDLE, SSL_CERT_FILE and the Java trust store replace the usual roots: "
            "the app then trusts only logx-mock.)",
            "Then send the app's Optimizely traffic to logx-mock, either way:",
            "  logx-mock serve --proxy-port 8081  and HTTPS_PROXY=http://127.0.0.1:8081 in the app",
            "  logx-mock serve --tls --port 443   and logx.optimizely.com, cdn.optimizely.com "
            "resolving to it (hosts file, container alias)",
            f"Keep {ca.directory / CA_KEY} private: whoever has it can impersonate any site to an "
            "app that trusts this CA.",
        ]
    )


class ServerCertificate:
    """The CA and a fresh leaf for one run of `serve`; the leaf's folder goes with `close()`."""

    def __init__(self, ca: CertificateAuthority, made: bool) -> None:
        self.ca = ca
        self.made = made
        self._folder = tempfile.TemporaryDirectory(prefix="logx-mock-leaf-")
        self.leaf = ca.issue(Path(self._folder.name))

    def __repr__(self) -> str:
        return f"<ServerCertificate {self.leaf.certfile} from {self.ca!r}>"

    @classmethod
    def open(cls, directory: Path) -> ServerCertificate:
        """Make or load the CA in `directory` and issue this run's leaf; `CAError` if it can't."""
        ca, made = CertificateAuthority.ensure(directory)
        return cls(ca, made)

    def close(self) -> None:
        self._folder.cleanup()
