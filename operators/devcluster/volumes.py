"""Pod volumes as directories under the pod's folder, bind-mounted by the shim at each
container's mountPaths: emptyDir, configMap, secret, downwardAPI, hostPath, and projected
volumes (the service-account token the API server signs for this pod, the cluster CA and
the namespace: what the admission plugin's `kube-api-access-*` volume asks for).

A mountPath that does not exist on the machine is created once and recorded in the
machine-wide `created-paths` record, which the last `down` removes again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .podspec import ConfigError, Lookup, field_value

Obj = dict[str, Any]
# token_request(serviceAccountName, audiences, expirationSeconds) -> (token, expires_in_seconds)
TokenRequest = Callable[[str, list[str] | None, int], tuple[str, int]]
CONFIG_SYNC = 5.0  # seconds between re-reads of configMap and secret volumes (the kubelet: about a minute)


@dataclass
class Volumes:
    pod: Obj
    root: Path
    lookup: Lookup
    token_request: TokenRequest
    created_paths: Path
    refresh_at: dict[str, float] = field(default_factory=dict)

    def dir(self, name: str) -> Path:
        return self.root / name

    def materialize(self) -> None:
        """Write every volume's files; raises ConfigError for what cannot be provided."""
        for vol in (self.pod.get("spec") or {}).get("volumes") or []:
            self._write(vol)

    def refresh(self) -> None:
        """Re-request service-account tokens past 80% of their lifetime, and bring configMap and secret
        volumes up to date every CONFIG_SYNC seconds (as the kubelet does; files change only if their
        content did, so CoreDNS's `reload` and the like see an edit as one atomic replacement)."""
        now = time.time()
        for vol in (self.pod.get("spec") or {}).get("volumes") or []:
            if "configMap" in vol or "secret" in vol:
                self.refresh_at.setdefault(vol["name"], now + CONFIG_SYNC)
            if (t := self.refresh_at.get(vol["name"])) and now >= t:
                if "configMap" not in vol and "secret" not in vol:
                    self._write(vol)
                    continue
                self.refresh_at[vol["name"]] = now + CONFIG_SYNC
                with contextlib.suppress(ConfigError):  # gone since the pod started: keep the files it had
                    self._write(vol)

    def _write(self, vol: Obj) -> None:
        name = vol["name"]
        d = self.dir(name)
        if "hostPath" in vol:
            return
        d.mkdir(parents=True, exist_ok=True)
        if "emptyDir" in vol:
            return
        files: dict[str, tuple[str, int]] = {}
        if src := vol.get("configMap"):
            files = self._keyed("configMap", src)
        elif src := vol.get("secret"):
            files = self._keyed("secret", {**src, "name": src.get("secretName", "")})
        elif src := vol.get("downwardAPI"):
            files = self._downward(src)
        elif src := vol.get("projected"):
            for s in src.get("sources") or []:
                if tok := s.get("serviceAccountToken"):
                    files.update(self._token(name, tok))
                elif cm := s.get("configMap"):
                    files.update(self._keyed("configMap", cm))
                elif sec := s.get("secret"):
                    files.update(self._keyed("secret", sec))
                elif dw := s.get("downwardAPI"):
                    files.update(self._downward(dw))
        else:
            kind = next((k for k in vol if k != "name"), "?")
            raise ConfigError(f"volume {name!r}: type {kind} is not supported by the devcluster")
        default_mode = (vol.get("configMap") or vol.get("secret") or vol.get("projected") or {}).get(
            "defaultMode", 0o644
        )
        for rel, (text, mode) in files.items():
            p = d / rel
            if p.is_file() and p.read_text() == text:
                continue
            p.parent.mkdir(parents=True, exist_ok=True)
            tmp = p.with_name(p.name + ".tmp")
            tmp.write_text(text)
            tmp.chmod(mode or default_mode)
            tmp.replace(p)

    def _keyed(self, kind: str, src: Obj) -> dict[str, tuple[str, int]]:
        data = self.lookup(kind, src.get("name", ""))
        if data is None:
            if src.get("optional"):
                return {}
            raise ConfigError(f'{kind.lower()} "{src.get("name")}" not found')
        items = src.get("items")
        if not items:
            return {k: (v, 0) for k, v in data.items()}
        out = {}
        for it in items:
            if it["key"] not in data:
                if src.get("optional"):
                    continue
                raise ConfigError(f'key {it["key"]!r} not found in {kind.lower()} "{src.get("name")}"')
            out[it.get("path") or it["key"]] = (data[it["key"]], it.get("mode", 0))
        return out

    def _downward(self, src: Obj) -> dict[str, tuple[str, int]]:
        out = {}
        for it in src.get("items") or []:
            if ref := it.get("fieldRef"):
                path = ref.get("fieldPath", "")
                if path in ("metadata.labels", "metadata.annotations"):
                    kv = self.pod["metadata"].get(path.split(".")[1]) or {}
                    out[it["path"]] = (
                        "\n".join(f'{k}="{v}"' for k, v in sorted(kv.items())),
                        it.get("mode", 0),
                    )
                else:
                    out[it["path"]] = (field_value(self.pod, path), it.get("mode", 0))
        return out

    def _token(self, vol: str, src: Obj) -> dict[str, tuple[str, int]]:
        sa = (self.pod.get("spec") or {}).get("serviceAccountName") or "default"
        aud = [src["audience"]] if src.get("audience") else None
        token, ttl = self.token_request(sa, aud, int(src.get("expirationSeconds") or 3607))
        self.refresh_at[vol] = time.time() + 0.8 * ttl
        return {src.get("path") or "token": (token, 0o600)}

    def mounts(self, container: Obj) -> list[tuple[str, str, bool]]:
        """(source, target, readOnly) bind mounts of one container, targets created if missing."""
        vols = {v["name"]: v for v in (self.pod.get("spec") or {}).get("volumes") or []}
        out = []
        for m in container.get("volumeMounts") or []:
            vol = vols.get(m["name"])
            if vol is None:
                raise ConfigError(f"volumeMount {m['name']!r} has no volume")
            src = Path(vol["hostPath"]["path"]) if "hostPath" in vol else self.dir(m["name"])
            if sub := m.get("subPath"):
                src = src / sub
                if "hostPath" not in vol and not src.exists():
                    src.mkdir(parents=True)
            readonly = bool(m.get("readOnly")) or any(
                k in vol for k in ("configMap", "secret", "projected", "downwardAPI")
            )
            out.append((str(src), self._target(Path(m["mountPath"]), src.is_dir()), readonly))
        return out

    def _target(self, target: Path, is_dir: bool) -> str:
        if target.exists():
            return str(target)
        missing = [p for p in [target, *target.parents] if not p.exists()]
        for p in reversed(missing):
            if p == target and not is_dir:
                p.touch()
            else:
                p.mkdir(exist_ok=True)
            with open(self.created_paths, "a") as f:
                f.write(f"{p}\n")
        return str(target)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def remove_created_paths(record: Path) -> None:
    """Undo `_target`: remove recorded paths, deepest first, where they are still empty."""
    if not record.exists():
        return
    for p in sorted({Path(x) for x in record.read_text().split()}, key=lambda p: len(p.parts), reverse=True):
        try:
            if p.is_dir():
                p.rmdir()
            elif p.is_file() and p.stat().st_size == 0:
                p.unlink()
        except OSError:
            continue
    os.unlink(record)
