"""The files nginx reads, and `nginx -t`: the small I/O the controller shell does before a reload.

Certificates are written before the config that names them (their names carry a content digest, so a
rotated Secret gets a new file and the running nginx keeps reading the old one until it reloads).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from operators.ingress.certs import self_signed
from operators.ingress.model import IngressModel
from operators.ingress.render import Runtime


def write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write through a new temporary file, then rename it over `path`.

    The temporary file is created anew (O_EXCL, no symlink followed) so that it gets exactly `mode`: a
    left-over `.tmp` with a wider mode would otherwise keep that mode, and a key would become readable."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    tmp.replace(path)


def prepare(runtime: Runtime) -> None:
    """Create nginx's directories and, when missing, a self-signed default certificate."""
    for d in (runtime.prefix, runtime.temp_dir, runtime.certificate_dir):
        Path(d).mkdir(parents=True, exist_ok=True)
    default = Path(runtime.default_certificate)
    if not default.exists():
        cert, key = self_signed(["ingress.local"], days=3650)
        write_private(default, cert + key)


def write_certificates(model: IngressModel, runtime: Runtime) -> None:
    """Write the model's certificate files that are missing (their names carry a content digest)."""
    cert_dir = Path(runtime.certificate_dir)
    for name, data in model.certificates:
        if not (cert_dir / name).exists():
            write_private(cert_dir / name, data)


def prune_certificates(model: IngressModel, runtime: Runtime) -> None:
    """Remove the certificate files that the model (the config nginx now runs) does not name, but the default.
    Only after a config is installed: the candidates `nginx -t` tries must not take the running config's files."""
    wanted = {name for name, _ in model.certificates}
    for old in Path(runtime.certificate_dir).glob("*_*.pem"):
        if old.name not in wanted and str(old) != runtime.default_certificate:
            old.unlink()


def save_endpoints(body: str, runtime: Runtime) -> None:
    """Keep the endpoints last pushed, for a restarted controller to serve with the last good config."""
    write_private(Path(runtime.prefix) / "endpoints", body.encode())


def saved_endpoints(runtime: Runtime) -> str | None:
    path = Path(runtime.prefix) / "endpoints"
    return path.read_text() if path.exists() else None


def check_config(text: str, runtime: Runtime, nginx: str = "nginx", timeout: float = 30) -> str | None:
    """Run `nginx -t` on `text` (as `<prefix>/nginx.conf.test`); None when it passes, else nginx's message."""
    path = Path(runtime.prefix) / "nginx.conf.test"
    write_private(path, text.encode(), 0o644)
    result = subprocess.run([nginx, "-t", "-q", "-c", str(path), "-p", runtime.prefix + "/"],
                            capture_output=True, text=True, timeout=timeout, check=False)
    return None if result.returncode == 0 else (result.stderr or result.stdout).strip()
