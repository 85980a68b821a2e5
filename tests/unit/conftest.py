"""`nft_check`: does the kernel's nft accept a ruleset? Checked in a throwaway network namespace (the
NetworkPolicy and CNI rulesets)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest


def _usable() -> bool:
    if not shutil.which("nft") or not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode == 0


@pytest.fixture(scope="session")
def nft_check() -> Callable[[list[Path]], list[str]]:
    """Check files with `nft -c -f` in one new netns; returns "file: error" for each rejected one."""
    if not _usable():
        pytest.skip("needs nft and unshare --net (root)")

    def check(paths: list[Path]) -> list[str]:
        script = 'for f in "$@"; do out=$(nft -c -f "$f" 2>&1) || echo "$f: $out"; done'
        proc = subprocess.run(
            ["unshare", "--net", "sh", "-c", script, "sh", *map(str, paths)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return [line for line in proc.stdout.splitlines() if line.strip()]

    return check
