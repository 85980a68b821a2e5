"""What nginx itself refuses, in one place, so that the model refuses it first for the one Ingress at fault.

nginx reads a config word (a quoted string, a regex, and a comment line too) into a buffer of 4096 bytes
(NGX_CONF_BUFFER) and refuses the whole file when one is longer. A user string may grow when rendered
(a regex escape and nginx's quoting can triple it), so the model accepts at most `MAX_VALUE` characters
for any one string that becomes one word.

Hash tables (server names, map keys) must fit their longest key in one bucket, and all keys in at most
`max_size` buckets; the renderer derives both from the keys, so no length the API allows fails.
"""

from __future__ import annotations

MAX_TOKEN = 4096
MAX_VALUE = 1024
_POINTER = 8  # sizeof(void *) on the 64-bit machines nginx runs on here


def hash_bucket_size(longest: int, floor: int = 128) -> int:
    """A `*_hash_bucket_size` that holds a key of `longest` bytes: nginx needs a pointer, the key and its
    length aligned to a pointer, and one more pointer to end the bucket (ngx_hash_init)."""
    need = _POINTER + -(-(longest + 2) // _POINTER) * _POINTER + _POINTER
    size = floor
    while size < need:
        size *= 2
    return size


def hash_max_size(keys: int, floor: int) -> int:
    """A `*_hash_max_size` with room to spare for `keys` keys: nginx tries every table size up to it."""
    return max(floor, 4 * keys)


def too_long(value: str) -> bool:
    return len(value) > MAX_VALUE


def shown(value: str, limit: int = 40) -> str:
    """The start of a long value, for an Event that names it without repeating it."""
    return repr(value if len(value) <= limit else value[:limit] + "...")
