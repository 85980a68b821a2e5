"""Traefik v3, the upstream anchor of the ingress and gateway benches: its binary and its configuration for
the benches' one route, served by its file provider.

`hack/build-traefik.sh` builds the binary from its Go module into the cache and alone knows where; the
quick benches ask it with `--cached` (a cold build takes minutes, too long for `make test`), the full ones
let it build. The static configuration leaves out everything Traefik does not do by default or knet's nginx
does not do in the bench either: no dashboard or API, no access log, no metrics, no tracing, no version
check; the dynamic one is the route: `Host(bench.test)`, any path, to the backend's ports."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "hack/build-traefik.sh"


def binary(build: bool) -> tuple[Path | None, str]:
    """The traefik binary (built first when `build`), or None and why not."""
    proc = subprocess.run([str(BUILD), *([] if build else ["--cached"])], capture_output=True, text=True,
                          timeout=3600, check=False)
    if proc.returncode != 0:
        return None, (proc.stderr.strip().splitlines() or ["hack/build-traefik.sh failed"])[-1]
    return Path(proc.stdout.strip().splitlines()[-1]) / "traefik", ""


def write_config(prefix: Path, port: int, host: str, backends: list[str]) -> Path:
    """traefik.yml (one entry point on the namespace's loopback `port`) and the file provider's route.yml
    (`host`, any path, round robin over the `backends` URLs) in `prefix`; the static file's path."""
    prefix.mkdir(parents=True, exist_ok=True)
    route = {"http": {"routers": {"bench": {"entryPoints": ["web"], "rule": f"Host(`{host}`)", "service": "bench"}},
                      "services": {"bench": {"loadBalancer": {"servers": [{"url": u} for u in backends]}}}}}
    static = {"entryPoints": {"web": {"address": f"127.0.0.1:{port}"}},
              "providers": {"file": {"filename": str(prefix / "route.yml"), "watch": False}},
              "log": {"level": "ERROR", "filePath": str(prefix / "traefik.log")},
              "global": {"checkNewVersion": False, "sendAnonymousUsage": False}}
    (prefix / "route.yml").write_text(yaml.safe_dump(route))
    (prefix / "traefik.yml").write_text(yaml.safe_dump(static))
    return prefix / "traefik.yml"
