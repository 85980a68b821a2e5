"""Command lines of the control-plane processes and the files they need (certs, kubeconfigs)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .layout import API_PORT, CLUSTER_DOMAIN, Layout
from .pki import PKI, kubeconfig


@dataclass(frozen=True)
class ProcSpec:
    """One supervised process: its argv, the namespace it runs in and its log file."""

    name: str
    argv: tuple[str, ...]
    ns: str
    log: Path
    ports: tuple[int, ...] = ()


def write_credentials(layout: Layout) -> None:
    """CA, serving and client certificates and the kubeconfigs that use them (idempotent)."""
    pki = PKI(layout.pki)
    pki.ensure_ca()
    names = (
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        f"kubernetes.default.svc.{CLUSTER_DOMAIN}",
        "localhost",
        "127.0.0.1",
        layout.api_host,
        layout.kubernetes_service_ip,
    )
    pki.ensure_cert("apiserver", "kube-apiserver", server_names=names, client=False)
    clients = {
        "admin": ("kubernetes-admin", ("system:masters",)),
        "controller-manager": ("system:kube-controller-manager", ()),
        "scheduler": ("system:kube-scheduler", ()),
    }
    clients.update({f"node-{n}": (f"system:node:{n}", ("system:nodes",)) for n in layout.node_names})
    for name, (cn, orgs) in clients.items():
        crt, key = pki.ensure_cert(name, cn, orgs)
        (layout.dir / f"{name}.kubeconfig").write_text(kubeconfig(layout.api_url, pki.ca_cert, crt, key, cn))
    layout.kubeconfig.write_text((layout.dir / "admin.kubeconfig").read_text())


def specs(layout: Layout, bin_dir: Path) -> list[ProcSpec]:
    """etcd, kube-apiserver, kube-controller-manager and kube-scheduler, in start order."""
    d, p = layout.dir, layout.pki
    ns = layout.node_ns(layout.node_names[0])
    kc = {n: str(d / f"{n}.kubeconfig") for n in ("controller-manager", "scheduler")}
    etcd = (
        str(bin_dir / "etcd"),
        "--name=control-plane",
        f"--data-dir={d / 'etcd'}",
        "--listen-client-urls=http://127.0.0.1:2379",
        "--advertise-client-urls=http://127.0.0.1:2379",
        "--listen-peer-urls=http://127.0.0.1:2380",
        "--initial-advertise-peer-urls=http://127.0.0.1:2380",
        "--initial-cluster=control-plane=http://127.0.0.1:2380",
        "--listen-metrics-urls=http://127.0.0.1:2381",
        "--unsafe-no-fsync=true",
        "--log-level=warn",
    )
    apiserver = (
        str(bin_dir / "kube-apiserver"),
        "--etcd-servers=http://127.0.0.1:2379",
        f"--advertise-address={layout.api_host}",
        f"--secure-port={API_PORT}",
        f"--service-cluster-ip-range={','.join(layout.service_cidrs)}",
        f"--tls-cert-file={p / 'apiserver.crt'}",
        f"--tls-private-key-file={p / 'apiserver.key'}",
        f"--client-ca-file={p / 'ca.crt'}",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",
        f"--service-account-issuer=https://kubernetes.default.svc.{CLUSTER_DOMAIN}",
        f"--service-account-key-file={p / 'sa.pub'}",
        f"--service-account-signing-key-file={p / 'sa.key'}",
        "--allow-privileged=true",
        "--profiling=false",
        "--v=1",
    )
    cidr_masks = ["--node-cidr-mask-size-ipv4=24"] + (["--node-cidr-mask-size-ipv6=64"] if layout.dual_stack else [])
    kcm = (
        str(bin_dir / "kube-controller-manager"),
        f"--kubeconfig={kc['controller-manager']}",
        f"--authentication-kubeconfig={kc['controller-manager']}",
        f"--authorization-kubeconfig={kc['controller-manager']}",
        "--bind-address=127.0.0.1",
        "--leader-elect=false",
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={p / 'sa.key'}",
        f"--root-ca-file={p / 'ca.crt'}",
        f"--cluster-signing-cert-file={p / 'ca.crt'}",
        f"--cluster-signing-key-file={p / 'ca.key'}",
        "--allocate-node-cidrs=true",
        f"--cluster-cidr={','.join(layout.pod_cidrs)}",
        *cidr_masks,
        f"--service-cluster-ip-range={','.join(layout.service_cidrs)}",
        "--controllers=*,bootstrapsigner,tokencleaner",
        "--v=1",
    )
    scheduler = (
        str(bin_dir / "kube-scheduler"),
        f"--kubeconfig={kc['scheduler']}",
        f"--authentication-kubeconfig={kc['scheduler']}",
        f"--authorization-kubeconfig={kc['scheduler']}",
        "--bind-address=127.0.0.1",
        "--leader-elect=false",
        "--v=1",
    )
    logs = layout.logs
    return [
        ProcSpec("etcd", etcd, ns, logs / "etcd.log", (2379, 2380, 2381)),
        ProcSpec("kube-apiserver", apiserver, ns, logs / "kube-apiserver.log", (API_PORT,)),
        ProcSpec("kube-controller-manager", kcm, ns, logs / "kube-controller-manager.log", (10257,)),
        ProcSpec("kube-scheduler", scheduler, ns, logs / "kube-scheduler.log", (10259,)),
    ]
