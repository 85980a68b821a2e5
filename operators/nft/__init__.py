"""A typed nftables table (sets, maps, counters, chains) written whole or as a diff: pure, shared by the
proxy's and NetworkPolicy's renderers, so both describe their rulesets the same way and diff objects."""
