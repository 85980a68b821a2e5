"""The container shim: enters a pod's network namespace, gives the container its own mount
and UTS namespaces (resolv.conf, hosts, volumes, /tmp, hostname), then execs the command.

Run as `python -m operators.devcluster.shim CMD...` with the plan as JSON in KNET_SHIM. It
imports only the standard library, so it starts fast, and it replaces itself by the command.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_SLAVE = 1 << 19
MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(src: str | None, dst: str, fstype: str | None, flags: int) -> None:
    def enc(s: str | None) -> bytes | None:
        return s.encode() if s is not None else None

    _check(_libc.mount(enc(src), enc(dst), enc(fstype), flags, None), f"mount {src} on {dst}")


def enter(plan: dict) -> None:
    """Apply the namespaces and mounts of `plan` to this (single-threaded) process."""
    if plan.get("netns"):
        fd = os.open(f"/run/netns/{plan['netns']}", os.O_RDONLY)
        _check(_libc.setns(fd, CLONE_NEWNET), f"setns {plan['netns']}")
        os.close(fd)
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWUTS), "unshare")
    _mount(None, "/", None, MS_REC | MS_SLAVE)
    # a fresh sysfs shows the pod's own interfaces under /sys/class/net
    if _libc.umount2(b"/sys", MNT_DETACH) == 0:
        _mount("sysfs", "/sys", "sysfs", 0)
    # paths the container needs from the machine (the venv, the package) that a mount such as the
    # pod's private /tmp would hide: held open now, bound back at their place after the mounts
    keep = {p: os.open(p, os.O_PATH) for p in plan.get("keep", []) if os.path.exists(p)}
    for src, dst, readonly in plan.get("mounts", []):
        _mount(src, dst, None, MS_BIND | MS_REC)
        if readonly:
            _mount(None, dst, None, MS_BIND | MS_REMOUNT | MS_RDONLY)
    for path, fd in keep.items():
        if not (os.path.exists(path) and os.path.samestat(os.stat(path), os.fstat(fd))):
            os.makedirs(path, exist_ok=True)
            _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
        os.close(fd)
    if host := plan.get("hostname"):
        _check(_libc.sethostname(host.encode(), len(host.encode())), "sethostname")
    os.chdir(plan.get("workdir") or "/")


def main() -> None:
    plan = json.loads(os.environ["KNET_SHIM"])
    argv = sys.argv[1:]
    try:
        enter(plan)
        os.execvpe(argv[0], argv, plan.get("env") or {})
    except OSError as e:
        # the runtime reads this line as the container's failure reason
        print(f"knet-shim: cannot start {argv[:1]}: {e}", file=sys.stderr, flush=True)
        sys.exit(128)


if __name__ == "__main__":
    main()
