"""Kernel checks for the proxy rulesets, each run in a throwaway network namespace (needs root)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable

import pytest

TOOLS = ("unshare", "nft", "iptables-restore", "ip6tables-restore", "iptables-save")


@pytest.fixture(scope="session")
def netns() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run a shell script in a fresh network namespace; files are passed as environment variables."""
    if os.geteuid() != 0 or not all(shutil.which(t) for t in TOOLS):
        pytest.skip("needs root and nftables/iptables tools")

    def run(script: str, **files: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["unshare", "--net", "sh", "-ec", script], capture_output=True, text=True,
                              timeout=30, env={**os.environ, **files})

    return run

