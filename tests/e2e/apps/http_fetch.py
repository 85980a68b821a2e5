"""N HTTP GETs of one URL, each on a new connection: which endpoint answered each, or why none did.

The Service proxy e2e tests spread requests over endpoints and count who answered; a new connection per
request lets the proxy choose again each time. Arguments: URL, N. Prints one line per request: the
body, or refused / timeout / error ... (the three ways a missing rule shows).
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request


def one(url: str) -> str:
    try:
        return urllib.request.urlopen(url, timeout=3).read().decode().strip()
    except urllib.error.URLError as e:
        r = e.reason
        return ("refused" if isinstance(r, ConnectionRefusedError) else
                "timeout" if isinstance(r, TimeoutError) else f"error {r}")
    except TimeoutError:
        return "timeout"
    except OSError as e:
        return f"error {e}"


def main() -> None:
    url, n = sys.argv[1], int(sys.argv[2])
    for _ in range(n):
        print(one(url), flush=True)


if __name__ == "__main__":
    main()
