"""Programs that the e2e tests run in pods and on the external client, one module each, run by path.

They are real modules rather than strings handed to `python3 -c` so that ruff reads them and a unit test
imports them: a mistake shows up before a cluster is made, not minutes into an e2e run. Each uses the
standard library only, because it runs with whatever Python the pod has (on the devcluster, the
machine's files are visible to every pod, so `app_path(name)` is valid inside one).
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent


def app_path(name: str) -> str:
    """The file of the program `name` (a module of this package), to run as `python3 PATH ARGS`."""
    file = HERE / f"{name}.py"
    if not file.is_file():
        raise FileNotFoundError(file)
    return str(file)
