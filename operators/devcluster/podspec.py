"""Pure pieces of the node runtime: what a pod's files, environment and status must say.

These follow the kubelet: resolv.conf by dnsPolicy and dnsConfig, the hosts file, env with
downward-API fields, ConfigMap/Secret references and `$(VAR)` expansion, and the pod status
(phase, conditions, containerStatuses) derived from the containers' states.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]
# lookup(kind, name) -> the data of ConfigMap or Secret `name` (decoded), None when missing
Lookup = Callable[[str, str], dict[str, str] | None]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ConfigError(ValueError):
    """The container cannot be configured (kubelet's CreateContainerConfigError)."""


def hostname_of(pod: Obj) -> str:
    spec = pod.get("spec") or {}
    return (spec.get("hostname") or pod["metadata"]["name"])[:63].rstrip("-.")


def resolv_conf(pod: Obj, node_resolv: str, dns_ip: str, domain: str) -> str:
    """resolv.conf for a pod, as the kubelet writes it."""
    spec = pod.get("spec") or {}
    ns = pod["metadata"]["namespace"]
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    host_net = bool(spec.get("hostNetwork"))
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    if policy == "ClusterFirstWithHostNet" or (policy == "ClusterFirst" and not host_net):
        servers = [dns_ip]
        searches = [f"{ns}.svc.{domain}", f"svc.{domain}", domain]
        options = ["ndots:5"]
    elif policy in ("Default", "ClusterFirst"):
        for line in node_resolv.splitlines():
            parts = line.split()
            if not parts:
                continue
            if parts[0] == "nameserver":
                servers += parts[1:2]
            elif parts[0] in ("search", "domain"):
                searches += parts[1:]
            elif parts[0] == "options":
                options += parts[1:]
    cfg = spec.get("dnsConfig") or {}
    servers += [s for s in cfg.get("nameservers") or [] if s not in servers]
    searches += [s for s in cfg.get("searches") or [] if s not in searches]
    for opt in cfg.get("options") or []:
        name = opt.get("name", "")
        options = [o for o in options if o.split(":")[0] != name]
        options.append(f"{name}:{opt['value']}" if opt.get("value") is not None else name)
    lines = [f"nameserver {s}" for s in servers[:3]]
    if searches:
        lines.append("search " + " ".join(searches[:32]))
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"


def hosts_file(pod: Obj, pod_ips: list[str], domain: str) -> str:
    spec = pod.get("spec") or {}
    lines = [
        "# Kubernetes-managed hosts file (knet devcluster).",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "fe00::0\tip6-mcastprefix",
        "fe00::1\tip6-allnodes",
        "fe00::2\tip6-allrouters",
    ]
    if not spec.get("hostNetwork"):
        host = hostname_of(pod)
        names = host
        if sub := spec.get("subdomain"):
            names = f"{host}.{sub}.{pod['metadata']['namespace']}.svc.{domain}\t{host}"
        lines += [f"{ip}\t{names}" for ip in pod_ips]
    for alias in spec.get("hostAliases") or []:
        lines.append(f"{alias.get('ip')}\t{' '.join(alias.get('hostnames') or [])}")
    return "\n".join(lines) + "\n"


_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: defined names are replaced, `$$` escapes, others stay."""
    return _REF.sub(lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), text)


def field_value(pod: Obj, path: str) -> str:
    md, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    if m := re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path):
        return (md.get(m.group(1)) or {}).get(m.group(2), "")
    simple = {
        "metadata.name": md.get("name"),
        "metadata.namespace": md.get("namespace"),
        "metadata.uid": md.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": status.get("hostIP"),
        "status.hostIPs": ",".join(i["ip"] for i in status.get("hostIPs") or []),
        "status.podIP": status.get("podIP"),
        "status.podIPs": ",".join(i["ip"] for i in status.get("podIPs") or []),
    }
    if path not in simple:
        raise ConfigError(f"unsupported fieldRef {path!r}")
    return simple[path] or ""


def _ref(lookup: Lookup, kind: str, ref: Obj) -> str | None:
    data = lookup(kind, ref.get("name", ""))
    value = None if data is None else data.get(ref.get("key", ""))
    if value is None and not ref.get("optional"):
        what = f'{kind.lower()} "{ref.get("name", "")}"'
        raise ConfigError(f"{what} not found" if data is None else f"key {ref.get('key')!r} not found in {what}")
    return value


def container_env(pod: Obj, container: Obj, lookup: Lookup, base: dict[str, str]) -> dict[str, str]:
    """The container's environment: `base` (PATH, HOSTNAME, service variables), envFrom, then env."""
    env = dict(base)
    for src in container.get("envFrom") or []:
        for kind in ("configMap", "secret"):
            if ref := src.get(f"{kind}Ref"):
                data = lookup(kind, ref.get("name", ""))
                if data is None and not ref.get("optional"):
                    raise ConfigError(f'{kind.lower()} "{ref.get("name")}" not found')
                env.update({src.get("prefix", "") + k: v for k, v in (data or {}).items()})
    for var in container.get("env") or []:
        name = var["name"]
        vf = var.get("valueFrom")
        if not vf:
            env[name] = expand(var.get("value") or "", env)
        elif ref := vf.get("fieldRef"):
            env[name] = field_value(pod, ref.get("fieldPath", ""))
        elif ref := vf.get("configMapKeyRef") or vf.get("secretKeyRef"):
            if (v := _ref(lookup, "configMap" if "configMapKeyRef" in vf else "secret", ref)) is not None:
                env[name] = v
        elif ref := vf.get("resourceFieldRef"):
            res = container.get("resources") or {}
            kind, _, what = ref.get("resource", "").partition(".")
            env[name] = str((res.get(kind) or {}).get(what) or (res.get("requests") or {}).get(what) or "0")
    return env


# --- status


@dataclass
class CState:
    """What the runtime knows of one container."""

    name: str
    image: str
    state: str = "waiting"  # waiting | running | terminated
    reason: str = "ContainerCreating"
    message: str = ""
    exit_code: int | None = None
    started_at: str = ""
    finished_at: str = ""
    restart_count: int = 0
    ready: bool = False
    started: bool = False
    container_id: str = ""
    last_state: Obj = field(default_factory=dict)

    def api(self) -> Obj:
        """The containerStatus. Unused state keys are null so a strategic-merge patch clears them."""
        state: Obj = {"waiting": None, "running": None, "terminated": None}
        if self.state == "running":
            state["running"] = {"startedAt": self.started_at}
        elif self.state == "terminated":
            state["terminated"] = {
                "exitCode": self.exit_code,
                "reason": self.reason,
                "message": self.message or None,
                "startedAt": self.started_at or None,
                "finishedAt": self.finished_at,
                "containerID": self.container_id or None,
            }
        else:
            state["waiting"] = {"reason": self.reason, "message": self.message or None}
        return {
            "name": self.name,
            "image": self.image,
            "imageID": "",
            "containerID": self.container_id or None,
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restart_count,
            "state": state,
            "lastState": self.last_state,
        }


def phase(restart_policy: str, init: list[CState], main: list[CState], init_done: bool) -> str:
    """The pod phase, as the kubelet computes it from its containers."""
    if not init_done:
        if restart_policy == "Never" and any(c.state == "terminated" and c.exit_code for c in init):
            return "Failed"
        return "Pending"
    if any(c.state == "running" for c in main):
        return "Running"
    if main and all(c.state == "terminated" for c in main):
        if all(c.exit_code == 0 for c in main):
            return "Succeeded"
        if restart_policy == "Never":
            return "Failed"
        return "Running"
    if any(c.restart_count > 0 or c.last_state for c in main):
        return "Running"  # between restarts, as the kubelet reports CrashLoopBackOff pods
    return "Pending"


def conditions(previous: list[Obj], now: str, truth: dict[str, bool], reasons: dict[str, str]) -> list[Obj]:
    """Pod conditions with lastTransitionTime carried over when the status did not change."""
    prev = {c["type"]: c for c in previous}
    out = []
    for ctype, ok in truth.items():
        status = "True" if ok else "False"
        p = prev.get(ctype)
        since = p["lastTransitionTime"] if p and p.get("status") == status else now
        reason = reasons.get(ctype) if not ok else None
        out.append(
            {
                "type": ctype,
                "status": status,
                "lastTransitionTime": since,
                "lastProbeTime": None,
                "reason": reason,
            }
        )
    return out
