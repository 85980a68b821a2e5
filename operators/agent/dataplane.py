"""The agent's only contact with the kernel: `nft -f -` transactions, a table check, `conntrack -D`."""

from __future__ import annotations

import asyncio

from pyroute2.nftables.main import NFTables

from operators.agent.conntrack import Flush
from operators.proxy.nftables import TABLE

NFPROTO_INET = 1

NOTHING_DELETED = "0 flow entries have been deleted"


async def run(argv: list[str], stdin: str = "") -> tuple[int, str]:
    """Run a command; its exit code and stderr (stdout is not needed by any caller)."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate(stdin.encode())
    return proc.returncode or 0, err.decode(errors="replace").strip()


async def nft_apply(text: str) -> tuple[bool, str]:
    """Apply one transaction: all of it or nothing (nft checks the whole input before committing)."""
    code, err = await run(["nft", "-f", "-"], text)
    return code == 0, err


def _table_names() -> set[str]:
    with NFTables(nfgen_family=NFPROTO_INET) as nft:
        return {msg.get_attr("NFTA_TABLE_NAME") for msg in nft.get_tables() if msg["nfgen_family"] == NFPROTO_INET}


async def table_present() -> bool:
    """Whether our table exists. A netlink dump of table names takes a millisecond; `nft list tables`
    reads the whole ruleset first (half a second at 1000 Services)."""
    return TABLE in await asyncio.to_thread(_table_names)


async def conntrack_delete(flush: Flush) -> tuple[bool, str]:
    """Delete the matching entries; none matching is fine."""
    code, err = await run(flush.argv())
    return code == 0 or NOTHING_DELETED in err, err
