"""Shared pytest options and fixtures for tests/ and bench/.

`--update-golden` rewrites golden files instead of comparing; `--bench-full` runs the
benchmarks at full size (`make bench`), otherwise they run in a quick mode (`make test`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

pytest_plugins = ["tests.e2e.harness"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", help="rewrite golden files from current output")
    parser.addoption("--bench-full", action="store_true", help="run benchmarks at full size (make bench)")


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Callable[[Path, str], None]:
    """Compare text with a golden file (or rewrite it with --update-golden)."""
    update = request.config.getoption("--update-golden")

    def check(path: Path, actual: str) -> None:
        if update or not path.exists():
            if not update:
                pytest.fail(f"golden file {path} is missing; run pytest --update-golden and review it")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(actual)
            return
        expected = path.read_text()
        assert actual == expected, f"output differs from {path} (pytest --update-golden rewrites it)"

    return check
