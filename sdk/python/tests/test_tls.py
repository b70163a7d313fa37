"""TLS: a `vectron dev --tls-cert --tls-key` with a test CA made by the `openssl` CLI."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import vectron
from conftest import Connect, DevServer, start_dev


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate it signed for localhost and 127.0.0.1."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("the TLS tests need the `openssl` command to make test certificates")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=directory, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=vectron-test-ca")  # fmt: skip
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (directory / "ext.cnf").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
        "basicConstraints=CA:FALSE\n"
        "extendedKeyUsage=serverAuth\n"
    )
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")  # fmt: skip
    return directory / "ca.pem", directory / "server.pem", directory / "server.key"


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DevServer, Path]]:
    """A dev server speaking TLS only, and the CA certificate that signed its certificate."""
    certs = tmp_path_factory.mktemp("certs")
    ca, cert, key = make_certificates(certs)
    dev = start_dev(
        tmp_path_factory.mktemp("vectron-dev-tls"), "--tls-cert", str(cert), "--tls-key", str(key)
    )
    try:
        yield dev, ca
    finally:
        dev.stop()


def test_the_ca_certificate_makes_tls_work(
    tls_server: tuple[DevServer, Path], connect: Connect, collection_name: str
) -> None:
    dev, ca = tls_server
    with connect(dev.grpc, ca_cert=ca, timeout=30) as by_path:
        by_path.create_collection(collection_name, 2)
        assert by_path.upsert(collection_name, [[1, 0]], ids=["a"]).count == 1
    with connect(f"https://{dev.grpc}", ca_cert=ca.read_bytes(), timeout=30) as by_bytes:
        assert by_bytes.count(collection_name) == 1
    with connect(
        dev.grpc, ca_cert=ca.read_text(), tls_server_name="localhost", timeout=30
    ) as named:
        assert collection_name in [c.name for c in named.list_collections()]
        named.drop_collection(collection_name)


def test_tls_failures_are_unavailable(tls_server: tuple[DevServer, Path], connect: Connect) -> None:
    dev, ca = tls_server
    with connect(dev.grpc, retries=0, timeout=10) as plaintext:
        with pytest.raises(vectron.Unavailable):
            plaintext.list_collections()
    with connect(dev.grpc, tls=True, retries=0, timeout=10) as untrusted:  # system roots only
        with pytest.raises(vectron.Unavailable, match="CERTIFICATE_VERIFY_FAILED|certificate"):
            untrusted.list_collections()
    with connect(
        dev.grpc, ca_cert=ca, tls_server_name="other.example", retries=0, timeout=10
    ) as wrong_name:
        with pytest.raises(vectron.Unavailable):
            wrong_name.list_collections()
