"""knet dns for the benchmark: `python -m bench.dns_knet --services N --pods-per-service M --listen ADDR:PORT`.

The same store and server as `knet dns --objects` (`operators.dns.offline.serve_store`), fed from
`bench.dns_data.Cluster` one object at a time as a watch would, instead of from a YAML file: PyYAML
needs minutes for 100k Pods, and a list of every parsed object would stay in the measured memory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

from bench.dns_data import Cluster
from operators.dns.config import parse_dns_config
from operators.dns.offline import serve_store
from operators.dns.records import RecordStore

CACHE_TTL = 3600  # external answers stay cached for the whole run, as in CoreDNS's `cache 3600`


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--services", type=int, required=True)
    p.add_argument("--pods-per-service", type=int, default=0)
    p.add_argument("--zone", default="cluster.local")
    p.add_argument("--listen", required=True)
    p.add_argument("--upstream", action="append", default=[], help="upstream server for other names")
    p.add_argument("--ttl", type=int, default=5)
    args = p.parse_args()
    spec = {"clusterDomain": args.zone, "ttl": args.ttl, "podRecords": "verified",
            "upstream": {"servers": args.upstream}, "cache": {"successTTL": CACHE_TTL}}
    config, problems = parse_dns_config({"metadata": {"name": "default"}, "spec": spec})
    assert not problems, problems
    store = RecordStore(config, nameservers=("127.0.0.1",))
    for obj in Cluster(args.services, args.pods_per_service, args.zone).objects():
        assert not store.apply(obj), obj
    store.mark_synced()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_store(store, args.listen, resolvers=()))


if __name__ == "__main__":
    sys.exit(main())
