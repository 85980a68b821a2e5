"""One line on stderr, not a traceback, for the errors a `knet` command expects (bad input, a failed
step): every subcommand reports them alike."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable

Command = Callable[[argparse.Namespace], int]


def one_line_errors(command: Command, errors: tuple[type[BaseException], ...], status: int) -> Command:
    """`command`, printing `error: ...` and returning `status` when it raises one of `errors`."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except errors as e:
            print(f"error: {e}", file=sys.stderr)
            return status

    return run
