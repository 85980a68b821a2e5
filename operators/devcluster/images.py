"""What an image means on the devcluster, where nothing can be pulled.

- knet's own image (its name is a setting, `knet` by default, matched on the last path
  component of the repository): the container's command runs from the installed package.
- agnhost (`registry.k8s.io/e2e-test-images/agnhost:*`) and pause: our Python stand-ins
  (`operators.devcluster.agnhost`), which answer like upstream's.
- CoreDNS (a repository ending in `coredns/coredns`, any tag): the pinned CoreDNS binary built in
  `upstream.bin_dir()`, with the container's args (kind's Deployment: `-conf /etc/coredns/Corefile`).
- anything else: the pod waits with reason ErrImagePull and a message naming these.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from . import upstream


@dataclass(frozen=True)
class Resolved:
    argv: tuple[str, ...] = ()
    error: str = ""


def repository_name(image: str) -> str:
    """`registry.k8s.io/e2e-test-images/agnhost:2.53@sha256:..` -> `agnhost`."""
    ref = image.split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def is_coredns(image: str) -> bool:
    """`<registry>/coredns/coredns:v1.11.3` (and Docker Hub's `coredns/coredns`)."""
    head, _, last = image.split("@", 1)[0].rpartition("/")
    return head.rsplit("/", 1)[-1] == "coredns" and last.split(":", 1)[0] == "coredns"


def supported(knet_image: str) -> str:
    return f"{knet_image} (knet's own image), CoreDNS, agnhost and pause (test images)"


def resolve(image: str, command: list[str] | None, args: list[str] | None, knet_image: str = "knet") -> Resolved:
    """The host argv that stands for the container's entrypoint, command and args."""
    name = repository_name(image)
    command, args = list(command or []), list(args or [])
    agnhost = (sys.executable, "-m", "operators.devcluster.agnhost")
    if name == knet_image:
        argv = command + args if command else ["knet", *args]
    elif name == "agnhost":
        if not command:
            argv = [*agnhost, *args]
        elif command[0] in ("/agnhost", "agnhost"):
            argv = [*agnhost, *command[1:], *args]
        else:
            argv = command + args
    elif is_coredns(image):
        binary = str(upstream.bin_dir() / "coredns")  # the image's entrypoint is /coredns
        entry = [binary, *command[1:]] if command and command[0] in ("/coredns", "coredns") else command
        argv = (entry or [binary]) + args
    elif name == "pause":
        argv = [*agnhost, "pause"]
    else:
        return Resolved(error=f'image "{image}" cannot be pulled: the devcluster runs only {supported(knet_image)}')
    if not argv:
        return Resolved(error=f'image "{image}": no command to run')
    return Resolved(argv=tuple(argv))
