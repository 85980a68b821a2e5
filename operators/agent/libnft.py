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

import asyncio
import ctypes
import functools
import os
from concurrent.futures import ThreadPoolExecutor

LIBRARY = "libnftables.so.1"  # package libnftables1, which nftables depends on


class Nft:
    """One libnftables context, used by one thread of its own: the context is not thread safe, callers
    wait without blocking the event loop (ctypes releases the GIL during the call), and nft's memory
    stays in one malloc arena instead of one per worker thread of asyncio's default pool."""

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
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="libnft")

    async def apply(self, text: str) -> tuple[bool, str]:
        """One transaction (every command of `text`, all or nothing); nft's complaint if it failed."""
        return await asyncio.get_running_loop().run_in_executor(self.thread, self._run, text)

    def _run(self, text: str) -> tuple[bool, str]:
        """In the context's thread. Each error nft reports comes with its `input:LINE:COLUMNS` and the
        line: the text goes through a memory file, since given a buffer nft 1.0.6 names no line and
        quotes the wrong one."""
        fd = os.memfd_create("nft-input")
        try:
            with open(fd, "wb", closefd=False) as f:
                f.write(text.encode())
            code = self.lib.nft_run_cmd_from_filename(self.ctx, f"/proc/self/fd/{fd}".encode())
            err = (self.lib.nft_ctx_get_error_buffer(self.ctx) or b"").decode(errors="replace").strip()
        finally:
            os.close(fd)
        return code == 0, err.replace(f"/proc/self/fd/{fd}:", "input:")


@functools.cache
def shared() -> Nft:
    """The process's context, made on first use (an agent that never programs nft never loads it)."""
    return Nft()
