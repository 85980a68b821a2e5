"""A pod's main process: steady HTTP load on $URL, a new connection per request, until the pod is deleted.

For the rolling-update tests: the log shows "ok N" after every 25 answers (progress) and one line
"failed TIME ERROR" per failure, so a test can count failures and see when they happened.
"""

from __future__ import annotations

import os
import time
import urllib.request


def main() -> None:
    ok = 0
    while True:
        try:
            urllib.request.urlopen(os.environ["URL"], timeout=3).read()
            ok += 1
            if ok % 25 == 0:
                print("ok", ok, flush=True)
        except Exception as e:  # noqa: BLE001 - every failure is a line of the report
            print("failed", time.time(), e, flush=True)
        time.sleep(0.02)


if __name__ == "__main__":
    main()
