"""`knet agent` refuses what it cannot run with one clear line, before touching anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from operators.agent import operator
from operators.cli import main


def agent(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_:
        main(["agent", *args])
    return int(exit_.value.code or 0), capsys.readouterr().err.strip()


def test_needs_a_node_name_and_an_api_server(capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NODE_NAME", raising=False)
    monkeypatch.delenv("KNET_API_SERVER", raising=False)
    assert agent(capsys) == (2, "error: no node name: set NODE_NAME (downward API spec.nodeName) or pass --node-name")
    code, err = agent(capsys, "--node-name", "n1")
    assert code == 2 and "KNET_API_SERVER" in err


def test_refuses_bad_settings(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, err = agent(capsys, "--node-name", "n1", "--min-sync-period", "20", "--max-sync-period", "10")
    assert code == 2 and "sync periods must satisfy" in err
    code, err = agent(capsys, "--node-name", "n1", "--metrics-addr", "10249")
    assert code == 2 and "'10249' is not HOST:PORT" in err
    code, err = agent(capsys, "--node-name", "n1", "--config", str(tmp_path / "missing.yaml"))
    assert code == 2 and "missing.yaml" in err


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[operator.Options]:
    """The options each `knet agent` run of the test would have started with (nothing is started)."""
    seen: list[operator.Options] = []

    async def run(options: operator.Options) -> None:
        seen.append(options)

    monkeypatch.setattr(operator, "run", run)
    monkeypatch.delenv("KNET_AGENT_DAEMONSET", raising=False)
    return seen


def test_cni_mode_from_the_chart_environment_or_the_flags(capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         started: list[operator.Options]) -> None:
    seen = started
    monkeypatch.setenv("KNET_CNI", "true")
    monkeypatch.setenv("KNET_CNI_CONFLIST", "/host/cni/10-knet.conflist")
    agent(capsys, "--node-name", "n1")
    agent(capsys, "--node-name", "n1", "--no-cni", "--cni-mtu", "1450")
    assert [(o.cni, o.cni_conflist, o.cni_mtu) for o in seen] == [
        (True, "/host/cni/10-knet.conflist", None), (False, "/host/cni/10-knet.conflist", 1450)]


def test_metrics_on_the_nodes_loopback_unless_opened(capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    started: list[operator.Options]) -> None:
    for name in ("KNET_METRICS_BIND_ADDRESS", "KNET_METRICS_PORT", "KNET_HEALTH_PORT"):
        monkeypatch.delenv(name, raising=False)
    agent(capsys, "--node-name", "n1")
    monkeypatch.setenv("KNET_METRICS_BIND_ADDRESS", "0.0.0.0")
    monkeypatch.setenv("KNET_METRICS_PORT", "9249")
    agent(capsys, "--node-name", "n1")
    assert [(o.metrics_addr, o.health_addr) for o in started] == [
        ("127.0.0.1:10249", "0.0.0.0:10256"), ("0.0.0.0:9249", "0.0.0.0:10256")]


def test_refuses_a_pod_mtu_out_of_range(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = agent(capsys, "--node-name", "n1", "--cni", "--cni-mtu", "9")
    assert code == 2 and "--cni-mtu '9' is not an MTU" in err


def test_refuses_to_run_with_every_side_off(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = agent(capsys, "--node-name", "n1", "--no-proxy", "--no-network-policy", "--no-cni")
    assert code == 2 and "nothing to do" in err
