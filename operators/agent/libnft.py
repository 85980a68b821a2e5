"""nft transactions in this process, through libnftables (the library the `nft` command is built on).

Why not `nft -f -`: a process closing its netlink socket right after a commit that deleted anything
(an endpoint change deletes map elements) waits in the kernel for an RCU grace period, until the
deleted objects are freed: 15-30 ms of a 16-32 ms `nft -f` of one endpoint change at 10k Services.
One context kept open for the agent's lifetime never closes its socket, and it skips nft's start:
the same transaction takes ~2 ms. Full syncs and other large transactions still run an `nft` process
(`dataplane`): what nft allocates for a whole ruleset would stay in this process's heap.

The library is loaded with ctypes: Debian ships its Python binding (python3-nftables) only for the
system Python, and the few calls used here are the library's stable API.
"""

from __future__ import annotations

import ctypes
import functools
import os
import threading

LIBRARY = "libnftables.so.1"  # package libnftables1, which nftables depends on


class Nft:
    """One libnftables context; a lock serialises callers (the context is not thread safe), which
    run it in worker threads: ctypes releases the GIL during the call."""

    def __init__(self) -> None:
        lib = ctypes.CDLL(LIBRARY)
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
        lib.nft_run_cmd_from_filename.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        self.lib = lib
        self.ctx = lib.nft_ctx_new(0)
        if not self.ctx:
            raise OSError("libnftables: could not create a context")
        lib.nft_ctx_buffer_output(self.ctx)  # nothing is printed to our stdout
        lib.nft_ctx_buffer_error(self.ctx)  # errors are read back, not printed to our stderr
        self.lock = threading.Lock()

    def run(self, text: str) -> tuple[bool, str]:
        """One transaction (every command of `text`, all or nothing); nft's complaint if it failed, each
        error with its `input:LINE:COLUMNS` and the line. The text goes through a memory file: given a
        buffer, nft 1.0.6 names no line and quotes the wrong one."""
        fd = os.memfd_create("nft-input")
        try:
            with open(fd, "wb", closefd=False) as f:
                f.write(text.encode())
            with self.lock:
                code = self.lib.nft_run_cmd_from_filename(self.ctx, f"/proc/self/fd/{fd}".encode())
                err = (self.lib.nft_ctx_get_error_buffer(self.ctx) or b"").decode(errors="replace").strip()
        finally:
            os.close(fd)
        return code == 0, err.replace(f"/proc/self/fd/{fd}:", "input:")


@functools.cache
def shared() -> Nft:
    """The process's context, made on first use (an agent that never programs nft never loads it)."""
    return Nft()
