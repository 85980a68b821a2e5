"""What an image means on the devcluster, where nothing can be pulled.

- knet's own image (its name is a setting, `knet` by default, matched on the last path
  component of the repository): the container's command runs from the installed package.
- agnhost (`registry.k8s.io/e2e-test-images/agnhost:*`) and pause: our Python stand-ins
  (`operators.devcluster.agnhost`), which answer like upstream's.
- anything else: the pod waits with reason ErrImagePull and a message naming these.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Resolved:
    argv: tuple[str, ...] = ()
    error: str = ""


def repository_name(image: str) -> str:
    """`registry.k8s.io/e2e-test-images/agnhost:2.53@sha256:..` -> `agnhost`."""
    ref = image.split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def supported(knet_image: str) -> str:
    return f"{knet_image} (knet's own image), agnhost and pause (test images)"


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
    elif name == "pause":
        argv = [*agnhost, "pause"]
    else:
        return Resolved(error=f'image "{image}" cannot be pulled: the devcluster runs only {supported(knet_image)}')
    if not argv:
        return Resolved(error=f'image "{image}": no command to run')
    return Resolved(argv=tuple(argv))
