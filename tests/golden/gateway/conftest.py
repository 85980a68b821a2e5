"""The ingress golden tests' nginx helpers (`ingress_nginx`), for the Gateway API cases rendered by the same
renderer."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "ingress"))
