"""The `bench` fixture: quick or full size, and the figures printed at the end of the run; the ingress and
gateway benches' namespace with its backend, and their Traefik."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bench import traefik as traefik_build
from bench.ingress_nginx import BACKEND, BACKEND_PORTS, Namespace, backend_conf

HERE = Path(__file__).parent
FIGURES: dict[str, list[str]] = {}
FULL_TIMEOUT = 3 * 3600  # seconds per benchmark under --bench-full: creating 30k Services alone takes ~20 min


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Full-size benchmarks outlast the suite's per-test timeout; quick ones keep it."""
    if config.getoption("--bench-full"):
        for item in items:
            if HERE in item.path.parents:
                item.add_marker(pytest.mark.timeout(FULL_TIMEOUT))


@dataclass
class Bench:
    """Size switch and figure sink for one benchmark."""

    full: bool
    name: str
    lines: list[str] = field(default_factory=list)

    def pick(self, quick: int, full: int) -> int:
        """A size: `quick` under `make test`, `full` under `make bench`."""
        return full if self.full else quick

    def record(self, line: str) -> None:
        """Keep a figure for the end-of-run summary (and print it at once under -s)."""
        print(line)
        FIGURES.setdefault(self.name, []).append(line)


def ratio(ours: float, theirs: float) -> str:
    """`theirs / ours` as 'N.NNx' (above 1 means knet is faster or smaller)."""
    return f"{theirs / ours:.2f}x" if ours > 0 else "n/a"


@pytest.fixture
def bench(request: pytest.FixtureRequest) -> Bench:
    mode = "full" if request.config.getoption("--bench-full") else "quick"
    return Bench(full=mode == "full", name=f"{request.node.nodeid} ({mode})")


INGRESS_NEEDS = [shutil.which(b) for b in ("nginx", "wrk", "nsenter")] + [
    Path("/usr/lib/nginx/modules/ngx_http_lua_module.so")]


@pytest.fixture
def ingress_namespace() -> Iterator[tuple[Namespace, Path]]:
    """The ingress benchmark's namespace with the backend started in it, and a directory for the proxies."""
    if not all(INGRESS_NEEDS):
        pytest.skip("needs nginx, libnginx-mod-http-lua, wrk and nsenter")
    ns = Namespace()
    with tempfile.TemporaryDirectory(prefix="knet-bench-ing-") as tmp:
        root = Path(tmp)
        try:
            ns.backend = ns.nginx(root / "backend", backend_conf(root / "backend"), BACKEND_PORTS[0], BACKEND)
            yield ns, root
        finally:
            ns.close()


@pytest.fixture
def traefik(bench: Bench) -> Path | None:
    """The Traefik binary: built if need be under --bench-full; in quick mode only when already built (a cold
    build takes minutes), else None, with the reason among the figures."""
    binary, why = traefik_build.binary(build=bench.full)
    if binary is None:
        bench.record(f"Traefik column skipped: {why}")
    return binary


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("benchmark figures")
        for name, lines in FIGURES.items():
            terminalreporter.write_line(name)
            for line in lines:
                terminalreporter.write_line(f"  {line}")
