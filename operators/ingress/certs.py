"""Self-signed certificates: the controller's default certificate (served for hosts without a valid
Secret, like ingress-nginx's "Fake Certificate"), and test certificates; and the key sizes nginx's
OpenSSL refuses (Debian builds it with security level 2: 112-bit security), so that one tenant's weak
Secret is refused for its own host instead of failing `nginx -t` for everyone."""

from __future__ import annotations

import datetime as dt
import functools

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID


def self_signed(names: list[str], days: int = 365, now: dt.datetime | None = None,
                key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None = None) -> tuple[bytes, bytes]:
    """(certificate PEM, PKCS#8 key PEM) for `names` (DNS names, wildcards allowed), with `key` or a P-256 key."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    start = now or dt.datetime.now(dt.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else "knet default")])
    cert = (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start - dt.timedelta(minutes=5))
            .not_valid_after(start + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


# OpenSSL's security level 2: RSA keys of 2048 bits, elliptic curves of 224
_MIN_BITS = ((rsa.RSAPublicKey, 2048), (ec.EllipticCurvePublicKey, 224))


@functools.lru_cache(maxsize=1024)
def weakness(chain_pem: bytes) -> str:
    """Why OpenSSL would refuse this certificate chain's keys ("" when it would not), e.g. "ee key too small"."""
    try:
        chain = x509.load_pem_x509_certificates(chain_pem)
    except ValueError:
        return "the certificate chain cannot be read"
    for i, cert in enumerate(chain):
        key = cert.public_key()
        bits = key.curve.key_size if isinstance(key, ec.EllipticCurvePublicKey) else getattr(key, "key_size", 0)
        low = next((n for kind, n in _MIN_BITS if isinstance(key, kind) and bits < n), 0)
        if low:
            which = "the certificate's" if i == 0 else f"chain certificate #{i}'s"
            return f"{which} key has {bits} bits; nginx's OpenSSL (security level 2) needs {low}"
    return ""
