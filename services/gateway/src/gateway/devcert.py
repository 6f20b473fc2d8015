"""A development certificate for the TLS edge: a local CA and a server certificate it signs.

`make dev-cert` (`python -m gateway.devcert [folder]`) writes var/dev-certs/{ca.pem, tls.crt,
tls.key}; `make up`, the e2e tests, compose (mount the folder) and a kind cluster use the pair.
Clients trust ca.pem (`curl --cacert`, `SSL_CERT_FILE`), never a disabled verification. The key
is a dev key for names that only resolve locally; production certificates come from a real CA.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.nginx import REPO_ROOT

DEFAULT_DIR = REPO_ROOT / "var" / "dev-certs"
DNS_NAMES = ("localhost", "gateway", "triple.localhost", "*.triple.localhost")
IP_ADDRESSES = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class DevCert:
    ca: Path
    cert: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Triple Academy (development)"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def ensure_dev_cert(folder: Path = DEFAULT_DIR, *, force: bool = False) -> DevCert:
    """The dev CA and server certificate in `folder`, created when missing (or forced)."""
    paths = DevCert(ca=folder / "ca.pem", cert=folder / "tls.crt", key=folder / "tls.key")
    if not force and all(p.exists() for p in (paths.ca, paths.cert, paths.key)):
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("Triple Academy development CA")
    ca_cert = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    san = [x509.DNSName(n) for n in DNS_NAMES] + [x509.IPAddress(ipaddress.ip_address(a)) for a in IP_ADDRESSES]
    cert = (
        x509.CertificateBuilder().subject_name(_name("localhost")).issuer_name(ca_name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        # Browsers refuse server certificates valid for more than 398 days.
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=397))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(paths.key, key)
    # The chain nginx serves: the leaf, then the CA (clients trust the CA from ca.pem).
    paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM)
                           + ca_cert.public_bytes(serialization.Encoding.PEM))
    paths.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m gateway.devcert", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--force", action="store_true", help="replace an existing certificate")
    args = parser.parse_args()
    paths = ensure_dev_cert(args.folder, force=args.force)
    print(f"CA {paths.ca}\ncertificate {paths.cert}\nkey {paths.key}")


if __name__ == "__main__":
    main()
