"""The agent's only contact with the kernel: nft transactions (in this process through `libnft`, full syncs
streamed to an `nft` process), `iptables-restore`, the checks that our rules are still there,
`conntrack -D`; and the choice between the two proxy modes."""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import queue
import re
import subprocess
import tempfile
import threading
import time
from collections import deque

from operators.agent import libnft, nft_tables
from operators.agent.conntrack import Flush
from operators.nft import table as nft_table
from operators.proxy import iptables, nftables
from operators.proxy.model import Group, ProxyModel
from operators.proxy.nftables import TABLE

log = logging.getLogger(__name__)
FAMILIES = (4, 6)

IN_PROCESS_MAX = 256 * 1024  # bytes of nft input applied in this process (~2k map elements)
NOTHING_DELETED = "0 flow entries have been deleted"
STREAM_INPUT = "/dev/fd/0"  # not "-": for that, nft reads all of its input before parsing any of it
INPUT_LOCATION = re.compile(rf"^{STREAM_INPUT}:(\d+):")


async def run_output(argv: list[str], stdin: str = "") -> tuple[int, str, str]:
    """Run a command: its exit code, stdout and stderr."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate(stdin.encode())
    return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace").strip()


async def run(argv: list[str], stdin: str = "") -> tuple[int, str]:
    """Run a command for its effect: exit code and stderr."""
    code, _, err = await run_output(argv, stdin)
    return code, err


async def nft_apply(text: str) -> tuple[bool, str]:
    """Apply one transaction: all of it or nothing (nft checks the whole input before committing). A small
    one in this process (`libnft`: ~2 ms instead of ~20 for an endpoint change at 10k Services), a large
    one in an `nft` process: what nft allocates for it (330 MB for a 10k-Service ruleset) is then not
    kept in the agent's heap."""
    if len(text) <= IN_PROCESS_MAX:
        return await libnft.shared().apply(text)
    code, err = await run(["nft", "-f", "-"], text)
    return code == 0, err


class NftStream:
    """One `nft` transaction, possibly written piece by piece while the rest is still being rendered: nft
    parses (about half of its work) what it has while the agent renders the next table, and commits
    everything or nothing when its input ends, as `nft_apply`. A thread feeds the pipe, so rendering never
    waits for nft to read; stderr goes to a file, so nft never waits for us to read it."""

    def __init__(self) -> None:
        read, self.pipe = os.pipe()
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed by finish or abort)
        try:
            self.proc = subprocess.Popen(["nft", "-f", STREAM_INPUT], stdin=read, stdout=subprocess.DEVNULL,
                                         stderr=self.stderr)
        except OSError:
            os.close(self.pipe)
            self.stderr.close()
            raise
        finally:
            os.close(read)
        self.pieces: list[str] = []  # the input so far, to quote the lines nft complains about
        self.queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self.feeder = threading.Thread(target=self._feed, name="nft-feed", daemon=True)
        self.feeder.start()

    def _feed(self) -> None:
        """Write what comes until the end marker, then close the pipe: the end of nft's input. When nft has
        exited early, the rest is dropped (its stderr says why)."""
        try:
            while (data := self.queue.get()) is not None:
                view = memoryview(data)
                while view:
                    view = view[os.write(self.pipe, view):]
        except BrokenPipeError:
            pass
        finally:
            os.close(self.pipe)

    def write(self, text: str) -> None:
        self.pieces.append(text)
        self.queue.put(text.encode())

    def _quote(self, err: str) -> str:
        """nft's complaint with each line it names followed by that input line, as nft itself prints them
        for a file it can read again (it cannot re-read a pipe)."""
        lines = "".join(self.pieces).split("\n")
        out = []
        for message in err.splitlines():
            out.append(message)
            if (m := INPUT_LOCATION.match(message)) and 0 < int(m[1]) <= len(lines):
                out.append(lines[int(m[1]) - 1])
        return "\n".join(out)

    def abort(self) -> None:
        """Stop nft before its input ends: it commits nothing."""
        self.proc.kill()
        self.queue.put(None)
        self.feeder.join()
        self.proc.wait()
        self.stderr.close()

    async def finish(self) -> tuple[bool, str]:
        """End the input; whether nft committed the transaction, and its complaint if not."""
        self.queue.put(None)
        code = await asyncio.to_thread(self.proc.wait)
        await asyncio.to_thread(self.feeder.join)
        self.stderr.seek(0)
        err = self.stderr.read().decode(errors="replace").strip()
        self.stderr.close()
        return code == 0, self._quote(err) if code else err


class FullSync:
    """A full nftables sync whose transaction starts before the model is built: `shard` renders each shard
    as `operators.proxy.model.stream_model` yields its ports and streams it to nft, so nft parses shard k
    while the model of shard k+1 is built; `finish` adds the rest (the main table) and ends the
    transaction."""

    groups, group_of = nftables.SHARDS, staticmethod(nftables.shard_of)  # how `stream_model` is to group ports

    def __init__(self, cache: nftables.RenderCache) -> None:
        self.nft = NftStream()
        self.build = nftables.FullBuild(cache, self.nft.write)

    def shard(self, group: Group) -> None:
        shard, head, ports = group
        self.build.shard(head, shard, ports)

    def abort(self) -> None:
        self.nft.abort()

    async def finish(self, model: ProxyModel) -> tuple[bool, str, nft_table.Ruleset]:
        try:
            rules = self.build.finish(model)
        except BaseException:
            self.nft.abort()
            raise
        ok, err = await self.nft.finish()
        return ok, err, rules


async def table_names() -> set[str]:
    """The names of the inet tables: one netlink dump, a millisecond (`nft_tables`)."""
    return nft_tables.table_names()


async def table_present(table: str) -> bool:
    """Whether a table of ours exists."""
    return table in await table_names()


def _ipt(family: int, what: str) -> str:
    return f"ip{'' if family == 4 else '6'}tables-{what}"


async def ipt_save(family: int) -> tuple[dict[str, iptables.Saved] | None, str]:
    """The nat and filter tables of one family as parsed `iptables-save` output (None and why on failure)."""
    code, out, err = await run_output([_ipt(family, "save")])
    return (iptables.parse_save(out), "") if code == 0 else (None, err)


async def ipt_restore(family: int, text: str) -> tuple[bool, str]:
    """One `iptables-restore --noflush` transaction (each table's part commits as a whole, or nothing)."""
    code, err = await run([_ipt(family, "restore"), "--noflush", "-w", "5"], text)
    return code == 0, err


async def conntrack_delete(flush: Flush) -> tuple[bool, str]:
    """Delete the matching entries; none matching is fine."""
    code, err = await run(flush.argv())
    return code == 0 or NOTHING_DELETED in err, err


# --- the two modes behind one interface, and switching between them --------------------------------


class NftRules:
    """nftables mode: `table inet knet-proxy` and its DNAT shards, replaced whole or changed by a diff against
    the last ones."""

    mode = "nftables"

    def __init__(self) -> None:
        self.applied: nft_table.Ruleset | None = None
        self.rules = 0
        self.cache = nftables.RenderCache()  # only the ports that changed since the last sync are rendered

    async def present(self) -> bool:
        """Whether every table of the last applied ruleset (or the main one, before any) still exists."""
        wanted = {t.name for t in self.applied.tables} if self.applied else {TABLE}
        return wanted <= await table_names()

    def stream(self) -> FullSync:
        """A full transaction started now, fed while the model is built (its `shard`)."""
        return FullSync(self.cache)

    async def apply(self, model: ProxyModel, full: bool, stream: FullSync | None = None) -> tuple[bool, str]:
        """A full transaction (the `stream` fed during the model's build, or a new one), or a diff against
        the last applied rules."""
        if stream is not None or full or self.applied is None:
            ok, err, rules = await (stream or self.stream()).finish(model)
        else:
            rules = nftables.build_ruleset(model, self.cache)
            text = nft_table.diff(self.applied, rules)
            ok, err = await nft_apply(text) if text else (True, "")
        if ok:
            self.applied = rules
            self.rules = sum(len(c.rules) for t in rules.tables for c in t.chains) + sum(
                len(s.elements) for t in rules.tables for s in t.sets)
        return ok, err

    async def cleanup(self) -> tuple[bool, str]:
        self.applied = None
        return await nft_apply(nftables.render_cleanup())


class IptablesRules:
    """iptables mode: our KNET-* chains in nat and filter, written with `iptables-restore --noflush` (as
    kube-proxy: other users' rules in those tables are left alone), one transaction per family; the
    jumps from the built-in chains are repaired in the same transaction when missing."""

    mode = "iptables"

    def __init__(self) -> None:
        self.rules = 0

    async def present(self) -> bool:
        for family in FAMILIES:
            saved, _ = await ipt_save(family)
            if saved is None or not iptables.jumps_present(saved):
                return False
        return True

    async def apply(self, model: ProxyModel, full: bool) -> tuple[bool, str]:
        """Every family's chains are rewritten each time (`full` changes nothing here); stale chains go."""
        rules = 0
        for family in FAMILIES:
            saved, err = await ipt_save(family)
            if saved is None:
                return False, err
            text = iptables.render(model, family, saved.get("nat", iptables.Saved()).ours)
            ok, err = await ipt_restore(family, iptables.with_jumps(text, iptables.missing_jumps(saved)))
            if not ok:
                return False, err
            rules += iptables.rule_count(text)
        self.rules = rules
        return True, ""

    async def cleanup(self) -> tuple[bool, str]:
        for family in FAMILIES:
            saved, err = await ipt_save(family)
            text = iptables.render_cleanup(saved) if saved is not None else ""
            ok, err = await ipt_restore(family, text) if text else (saved is not None, err)
            if not ok:
                return False, err
        return True, ""


Rules = NftRules | IptablesRules
MODES: dict[str, type[NftRules] | type[IptablesRules]] = {"nftables": NftRules, "iptables": IptablesRules}


class Dataplane:
    """The rules of the mode in the model's config. A switch (or the first apply after a start) writes
    the new mode in full and then removes the other mode's rules, so traffic is never left without
    rules: both sets are in the kernel for a moment, and each DNATs the same way."""

    def __init__(self) -> None:
        self.current: Rules = NftRules()
        self.cleaned = False  # the other mode's leftovers (from a switch or an earlier run) are gone
        self.last_duration = 0.0  # seconds the last successful apply took (render and transaction)
        self.failures = 0  # failed transactions since the start
        self.errors: deque[tuple[datetime.datetime, str]] = deque(maxlen=10)  # newest first

    @property
    def mode(self) -> str:
        return self.current.mode

    @property
    def rules(self) -> int:
        return self.current.rules

    async def present(self, mode: str) -> bool:
        """Whether `mode`'s rules are in place (False when another mode is in use: a full sync is due)."""
        return mode == self.current.mode and await self.current.present()

    def stream(self, mode: str) -> FullSync | None:
        """A full sync to feed while the model is built, when `mode` is the nftables mode in use."""
        return self.current.stream() if isinstance(self.current, NftRules) and mode == self.current.mode else None

    async def apply(self, model: ProxyModel, full: bool, stream: FullSync | None = None) -> tuple[bool, str]:
        started = time.monotonic()
        mode = model.config.mode
        switching = mode != self.current.mode
        rules = MODES[mode]() if switching else self.current
        if stream is not None and isinstance(rules, NftRules):
            ok, err = await rules.apply(model, True, stream)
        else:
            ok, err = await rules.apply(model, full or switching)
        if not ok:
            self.failures += 1
            self.errors.appendleft((datetime.datetime.now(datetime.UTC), f"{mode} transaction failed: {err[:2000]}"))
            return ok, err
        if switching or not self.cleaned:
            others = [self.current] if switching else [cls() for m, cls in MODES.items() if m != mode]
            for old in others:
                done, why = await old.cleanup()
                if not done:
                    log.warning("could not remove the %s rules: %s", old.mode, why)
            self.cleaned = True
            if switching:
                log.info("proxy mode switched from %s to %s", self.current.mode, mode)
        self.current = rules
        self.last_duration = time.monotonic() - started
        return True, ""
