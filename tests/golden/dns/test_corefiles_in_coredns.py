"""Every golden Corefile is loaded and served by real CoreDNS (the pinned binary; needs root).

Each Corefile runs in a throwaway network and mount namespace: only loopback, a resolv.conf naming an
address that namespace cannot reach, and on a private tmpfs the service-account token and CA with
which the kubernetes plugin logs in to `empty_api` (an API server without objects) in the same
namespace. CoreDNS refuses a Corefile it cannot parse or set up; once it answers, each case asks the
`dns-version` TXT record of its first cluster zone (the kubernetes plugin synced and serves that
zone), a missing Service there (NXDOMAIN with the zone's SOA) and, if the main block has hosts
entries, the first one (its address must come back).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from operators.devcluster import upstream

ROOT = Path(__file__).resolve().parents[3]
EXPECTED = Path(__file__).parent / "expected"
COREFILES = sorted(EXPECTED.glob("*.Corefile"))
COREDNS = upstream.bin_dir() / "coredns"
API_PORT = 6443

SCRIPT = r"""
ip link set lo up
echo "nameserver 192.0.2.53" > "$DIR/resolv.conf"
mount --bind "$DIR/resolv.conf" /etc/resolv.conf
mount -t tmpfs tmpfs /run
SA=/run/secrets/kubernetes.io/serviceaccount
mkdir -p $SA
echo not-checked > $SA/token
cp "$CERT" $SA/ca.crt
"$PYTHON" -m tests.golden.dns.empty_api "$CERT" "$KEY" "$API_PORT" > "$DIR/api.log" 2>&1 &
API=$!
KUBERNETES_SERVICE_HOST=127.0.0.1 KUBERNETES_SERVICE_PORT="$API_PORT" "$COREDNS" -conf "$DIR/Corefile" \
  > "$DIR/log" 2>&1 &
DNS=$!
trap 'kill $DNS $API 2>/dev/null' EXIT
i=0
until curl -sf -o /dev/null "http://127.0.0.1:$READY/ready"; do  # every plugin that reports readiness is
  kill -0 $DNS 2>/dev/null || { echo "CoreDNS exited" >&2; exit 3; }
  i=$((i + 1)); [ $i -le $READY_TRIES ] || { echo "CoreDNS not ready in $READY_WAIT s" >&2; exit 4; }
  sleep 0.25
done
echo "$QUESTIONS" | while read -r name qtype; do
  for try in 1 2 3 4 5; do  # a refused query is asked again: 2 cores, eleven CoreDNS starting at once
    reply=$(dig +time=2 +tries=1 -p "$PORT" @127.0.0.1 "$name" "$qtype")
    case "$reply" in *"communications error"*) sleep 1 ;; *) break ;; esac
  done
  echo "$reply"
  echo "=== end"
done
echo "=== CoreDNS log"
cat "$DIR/log"
"""
READY_WAIT = 60  # seconds; eleven CoreDNS processes start at once on two cores


@dataclass(frozen=True)
class Question:
    name: str
    qtype: str
    rcode: str
    answer: str | None  # the record's data, if one must come back


def ports(corefile: str) -> tuple[int, int]:
    """The DNS and ready ports of a Corefile's main block."""
    main = corefile.split("\n}\n", 1)[0]
    dns = re.match(r"\.:(\d+) \{", main)
    ready = re.search(r"^\s+ready :(\d+)$", main, re.M)
    assert dns and ready, "every rendered Corefile has a main block with ready"
    return int(dns.group(1)), int(ready.group(1))


def questions(corefile: str) -> list[Question]:
    """What to ask a Corefile's main block."""
    main = corefile.split("\n}\n", 1)[0]
    zone = re.search(r"kubernetes (\S+)", main).group(1)  # type: ignore[union-attr]
    asked = [Question(f"dns-version.{zone}.", "TXT", "NOERROR", '"1.1.0"'),
             Question(f"missing.default.svc.{zone}.", "A", "NXDOMAIN", None)]
    if hosts := re.search(r"hosts \{\n\s+(\S+) (\S+)", main):
        ip, name = hosts.groups()
        asked.append(Question(name, "AAAA" if ":" in ip else "A", "NOERROR", ip))
    return asked


def serve(corefile: Path, tmp: Path, cert: Path, key: Path) -> tuple[list[str], str]:
    """CoreDNS's reply to each question (dig's output) and its log, or raises with the log."""
    d = tmp / corefile.stem
    d.mkdir()
    shutil.copy(corefile, d / "Corefile")
    (port, ready), asked = ports(corefile.read_text()), questions(corefile.read_text())
    env = {**os.environ, "DIR": str(d), "COREDNS": str(COREDNS), "PORT": str(port), "READY": str(ready),
           "CERT": str(cert),
           "KEY": str(key), "PYTHON": sys.executable, "API_PORT": str(API_PORT),
           "READY_WAIT": str(READY_WAIT), "READY_TRIES": str(READY_WAIT * 4),
           "QUESTIONS": "\n".join(f"{q.name} {q.qtype}" for q in asked)}
    proc = subprocess.run(["unshare", "--net", "--mount", "--propagation", "private", "sh", "-c", SCRIPT],
                          capture_output=True, text=True, env=env, timeout=READY_WAIT + 60, cwd=ROOT)
    answered, _, log = proc.stdout.partition("=== CoreDNS log\n")
    replies = answered.split("=== end\n")[:-1]
    if len(replies) != len(asked):
        log = log or ((d / "log").read_text() if (d / "log").exists() else "")
        raise AssertionError(f"CoreDNS did not answer with {corefile.name} (exit {proc.returncode}): "
                             f"{proc.stderr}\n{log}")
    return replies, log


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[list[str], str] | AssertionError]:
    tools = ("unshare", "dig", "ip", "openssl", "curl")
    if os.geteuid() != 0 or not COREDNS.exists() or not all(shutil.which(t) for t in tools):
        pytest.skip("needs root, unshare, dig, openssl, curl and the pinned CoreDNS binary (hack/build-upstream.sh)")
    tmp = tmp_path_factory.mktemp("coredns")
    cert, key = tmp / "api.crt", tmp / "api.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)

    def one(corefile: Path) -> tuple[list[str], str] | AssertionError:
        try:
            return serve(corefile, tmp, cert, key)
        except AssertionError as e:
            return e

    with ThreadPoolExecutor(max_workers=len(COREFILES)) as pool:  # each mostly waits for CoreDNS to sync
        return dict(zip((c.stem for c in COREFILES), pool.map(one, COREFILES), strict=True))


@pytest.mark.parametrize("corefile", COREFILES, ids=lambda p: p.stem)
def test_coredns_serves_the_golden_corefile(corefile: Path,
                                           served: dict[str, tuple[list[str], str] | AssertionError]) -> None:
    result = served[corefile.stem]
    if isinstance(result, AssertionError):
        raise result
    replies, log = result
    for question, reply in zip(questions(corefile.read_text()), replies, strict=True):
        why = (question, reply, f"CoreDNS log:\n{log}")
        assert f"status: {question.rcode}" in reply, why
        if question.answer:
            record = rf"^{re.escape(question.name)}\s+\d+\s+IN\s+{question.qtype}\s+{re.escape(question.answer)}$"
            assert re.search(record, reply, re.M), why
        else:
            assert re.search(r"AUTHORITY SECTION:\n\S+\s+\d+\s+IN\s+SOA", reply), why
