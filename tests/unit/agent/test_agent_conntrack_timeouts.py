"""The node's TCP conntrack timeouts, as kube-proxy sets them (a /proc/sys stand-in under tmp_path)."""

from __future__ import annotations

from pathlib import Path

from operators.agent.conntrack_timeouts import CLOSE_WAIT, DEFAULTS, ESTABLISHED, apply, changes


def proc_sys(tmp_path: Path, established: str = "432000", close_wait: str = "60") -> Path:
    for name, value in ((ESTABLISHED, established), (CLOSE_WAIT, close_wait)):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(value + "\n")
    return tmp_path


def test_kube_proxys_defaults_are_written_where_they_differ(tmp_path: Path) -> None:
    root = proc_sys(tmp_path)
    assert apply(DEFAULTS, root) == []
    assert [(root / n).read_text() for n in (ESTABLISHED, CLOSE_WAIT)] == ["86400", "3600"]


def test_zero_leaves_a_setting_alone_and_equal_values_are_not_rewritten() -> None:
    assert changes({ESTABLISHED: 0, CLOSE_WAIT: 3600}, {ESTABLISHED: 60, CLOSE_WAIT: 3600}) == {}


def test_a_missing_setting_is_an_error_not_a_crash(tmp_path: Path) -> None:
    [error] = apply({CLOSE_WAIT: 3600}, tmp_path / "no-conntrack")
    assert error.startswith("cannot set net.netfilter.nf_conntrack_tcp_timeout_close_wait to 3600")
