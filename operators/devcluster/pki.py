"""The devcluster's certificates: a CA, the API server's serving certificate, client
certificates for each control-plane component, the admin and every node, and the
service-account signing key. Written once per cluster and reused by later `up`s."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=365)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)


def _name(cn: str, orgs: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
    )


class PKI:
    """Certificates in one directory: `ca.crt`, `<name>.crt`/`<name>.key`, `sa.key`/`sa.pub`."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def path(self, name: str) -> tuple[Path, Path]:
        return self.dir / f"{name}.crt", self.dir / f"{name}.key"

    @property
    def ca_cert(self) -> Path:
        return self.dir / "ca.crt"

    def _load_ca(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        cert = x509.load_pem_x509_certificate(self.ca_cert.read_bytes())
        key = serialization.load_pem_private_key((self.dir / "ca.key").read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return cert, key

    def ensure_ca(self) -> None:
        """Create the CA and the service-account key pair unless they exist."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if not self.ca_cert.exists():
            key = _key()
            name = _name("knet-devcluster-ca")
            cert = (
                _builder(name, name, key.public_key())
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
                .sign(key, hashes.SHA256())
            )
            _write_key(self.dir / "ca.key", key)
            self.ca_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        if not (self.dir / "sa.key").exists():
            key = _key()
            _write_key(self.dir / "sa.key", key)
            (self.dir / "sa.pub").write_bytes(
                key.public_key().public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            )

    def ensure_cert(
        self,
        name: str,
        cn: str,
        orgs: tuple[str, ...] = (),
        *,
        server_names: tuple[str, ...] = (),
        client: bool = True,
    ) -> tuple[Path, Path]:
        """Issue `<name>.crt` for a client (and, with server_names, a server) unless it exists."""
        crt, keyfile = self.path(name)
        if crt.exists() and keyfile.exists():
            return crt, keyfile
        ca, ca_key = self._load_ca()
        key = _key()
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
        b = _builder(_name(cn, orgs), ca.subject, key.public_key()).add_extension(
            x509.BasicConstraints(ca=False, path_length=None), critical=True
        )
        if server_names:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
            sans: list[x509.GeneralName] = []
            for n in server_names:
                try:
                    sans.append(x509.IPAddress(ipaddress.ip_address(n)))
                except ValueError:
                    sans.append(x509.DNSName(n))
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = b.add_extension(x509.ExtendedKeyUsage(usages), critical=False).sign(ca_key, hashes.SHA256())
        _write_key(keyfile, key)
        crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return crt, keyfile


def kubeconfig(server: str, ca: Path, cert: Path, key: Path, user: str) -> str:
    """A kubeconfig (YAML) that embeds nothing: it points at the files, so rotating them needs no edit."""
    return (
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: knet\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\n"
        f"users:\n- name: {user}\n  user:\n    client-certificate: {cert}\n    client-key: {key}\n"
        f"contexts:\n- name: knet\n  context:\n    cluster: knet\n    user: {user}\n"
        "current-context: knet\n"
    )
