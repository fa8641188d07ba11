"""A throw-away CA and a server certificate for 127.0.0.1 / localhost.

Generated with ``cryptography`` once per test session (the ``tls_bundle`` fixture), so the
TLS registry variant exercises real certificate verification against a CA that the
client must be told about (``ca_file``), exactly like a private registry.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_HOSTS: tuple[str, ...] = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class TLSBundle:
    """Paths to a generated CA and a server certificate signed by it (PEM files)."""

    directory: Path
    ca_file: Path  # ca.pem: what a client trusts
    ca_key_file: Path
    cert_file: Path  # server.pem: the registry's certificate (leaf only)
    key_file: Path  # server-key.pem
    hosts: tuple[str, ...]

    def cert_dir(self) -> Path:
        """A skopeo/containers ``--cert-dir`` folder: it reads every ``*.crt`` as a CA."""
        folder = self.directory / "cert-dir"
        if not folder.is_dir():
            folder.mkdir()
            (folder / "ca.crt").write_bytes(self.ca_file.read_bytes())
        return folder

    def client_context(self) -> ssl.SSLContext:
        """An SSL context that trusts only this CA (for httpx ``verify=``)."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def server_context(self) -> ssl.SSLContext:
        """An SSL context serving the server certificate (for harness servers)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.cert_file), str(self.key_file))
        return ctx


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Portside tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def make_tls_bundle(directory: Path, hosts: tuple[str, ...] = DEFAULT_HOSTS) -> TLSBundle:
    """Create ``directory`` with ca.pem, ca-key.pem, server.pem and server-key.pem."""
    directory.mkdir(parents=True, exist_ok=True)
    # Backdated a little: a clock a few seconds behind must not see "not yet valid".
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    later = now + dt.timedelta(days=7)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("Portside test CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(later)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(later)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )

    bundle = TLSBundle(
        directory=directory,
        ca_file=directory / "ca.pem",
        ca_key_file=directory / "ca-key.pem",
        cert_file=directory / "server.pem",
        key_file=directory / "server-key.pem",
        hosts=tuple(hosts),
    )
    bundle.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    bundle.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(bundle.ca_key_file, ca_key)
    _write_key(bundle.key_file, key)
    return bundle
