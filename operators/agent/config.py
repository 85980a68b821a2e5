"""The agent's settings from `ClusterNetworkConfig` (knet.io/v1alpha1, cluster scope, name `default`).

`parse` is pure: the object (or None when there is none) over the base settings of `--config FILE` and
the command line gives one typed `AgentConfig` for the whole agent: the Service proxy's `ProxyConfig`
(mode, masqueradeAll, nodePortAddresses, cluster and service CIDRs, ...), the sync `Periods`, and the
NetworkPolicy options. Precedence: a field set in the object wins over the file, which wins over the
built-in defaults; removing the object brings the base back. A bad value keeps the base value and gives
a problem (the CRD's validation normally stops such values before they get here).

Mapping of the object's fields:
  spec.clusterCIDRs, spec.serviceCIDRs          ProxyConfig cluster_cidrs, service_cidrs
  spec.proxy.mode, masqueradeAll, masqueradeBit, dropBit, nodePortAddresses, detectLocalMode,
  externalIPRanges                              the ProxyConfig fields of the same names
  spec.proxy.minSyncPeriod                      Periods.min (changes within it are programmed together)
  spec.proxy.syncPeriod                         Periods.max (kube-proxy's syncPeriod: the longest time
                                                between syncs, so how soon removed rules come back)
  spec.networkPolicy.dropLogging, strictMode    PolicyOptions

`Settings` holds the current value and tells its listeners when it changes; `add_watch` keeps it
current from a Kopf watch, and `read` fetches the object once at start, so that the first sync already
uses the configured mode. The CRD must be installed before the agent starts (the chart does): with
resource scanning off, Kopf does not notice a CRD created later.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
import kopf

from operators.kube.client import ApiError, Client, api_path
from operators.kube.services import Problem
from operators.proxy.model import ProxyConfig
from operators.runtime.schedule import Periods

GROUP, VERSION, PLURAL, NAME = "knet.io", "v1alpha1", "clusternetworkconfigs", "default"
KIND = "ClusterNetworkConfig"
PROXY_KEYS = ("mode", "masqueradeAll", "masqueradeBit", "dropBit", "nodePortAddresses", "detectLocalMode",
              "externalIPRanges")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PolicyOptions:
    drop_logging: bool = False  # log dropped packets and count drops per policy
    strict_mode: bool = False  # cut established connections a policy change no longer allows


@dataclass(frozen=True)
class AgentConfig:
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    periods: Periods = field(default_factory=Periods)
    policy: PolicyOptions = field(default_factory=PolicyOptions)
    generation: int = 0  # metadata.generation of the object read; 0 without one
    problems: tuple[Problem, ...] = ()


def parse_duration(value: object) -> float | None:
    """A Go duration (`1s`, `1m30s`, `250ms`) in seconds; None if it is not one."""
    if not isinstance(value, str) or not value or _DURATION.sub("", value):
        return None
    return sum(float(n) * _UNITS[unit] for n, unit in _DURATION.findall(value))


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def parse(obj: Mapping[str, Any] | None, base: Mapping[str, Any] | None = None,
          periods: Periods | None = None) -> AgentConfig:
    """The settings from a ClusterNetworkConfig body over the base (`--config` keys, command-line periods)."""
    spec = _mapping(_mapping(obj).get("spec"))
    proxy = _mapping(spec.get("proxy"))
    merged = {**(base or {}), **{k: spec[k] for k in ("clusterCIDRs", "serviceCIDRs") if k in spec},
              **{k: proxy[k] for k in PROXY_KEYS if k in proxy}}
    proxy_config, problems = ProxyConfig.from_dict(merged)

    def bad(message: str) -> None:
        problems.append(Problem(KIND, "", NAME, message))

    base_periods = periods or Periods()
    new_periods = base_periods
    for key, attr in (("minSyncPeriod", "min"), ("syncPeriod", "max")):
        if key not in proxy:
            continue
        seconds = parse_duration(proxy[key])
        if seconds is None:
            bad(f"spec.proxy.{key} {proxy[key]!r} is not a duration; using {getattr(base_periods, attr)}s")
        else:
            new_periods = replace(new_periods, **{attr: seconds})
    if new_periods.problems():
        bad(f"{new_periods.problems()[0]}; using the agent's periods")
        new_periods = base_periods

    policy = _mapping(spec.get("networkPolicy"))
    flags: dict[str, bool] = {}
    for key, attr in (("dropLogging", "drop_logging"), ("strictMode", "strict_mode")):
        value = policy.get(key, False)
        if isinstance(value, bool):
            flags[attr] = value
        else:
            bad(f"spec.networkPolicy.{key} {value!r} is not a boolean; using false")
    generation = _mapping(_mapping(obj).get("metadata")).get("generation", 0)
    return AgentConfig(proxy_config, new_periods, PolicyOptions(**flags),
                       generation if isinstance(generation, int) else 0, tuple(problems))


class Settings:
    """The current `AgentConfig`; listeners are called with each new value that differs."""

    def __init__(self, base: Mapping[str, Any] | None, periods: Periods) -> None:
        self.base = dict(base or {})
        self.periods = periods
        self.current = parse(None, self.base, periods)
        self.listeners: list[Callable[[AgentConfig], None]] = []

    def listen(self, listener: Callable[[AgentConfig], None]) -> None:
        self.listeners.append(listener)
        listener(self.current)

    def update(self, obj: Mapping[str, Any] | None) -> None:
        new = parse(obj, self.base, self.periods)
        if new == self.current:
            return
        if new.proxy.mode != self.current.proxy.mode:
            log.info("ClusterNetworkConfig: proxy mode %s -> %s", self.current.proxy.mode, new.proxy.mode)
        self.current = new
        for listener in self.listeners:
            listener(new)


async def read(client: Client) -> tuple[bool, Mapping[str, Any] | None]:
    """The object once: (True, body or None when absent), or (False, None) when the API did not answer."""
    try:
        return True, await client.request("GET", api_path(f"{GROUP}/{VERSION}", PLURAL, name=NAME))
    except (ApiError, aiohttp.ClientError, TimeoutError, OSError, ValueError) as e:
        if isinstance(e, ApiError) and e.status == 404:  # no object, or no CRD: the base settings
            return True, None
        log.warning("could not read ClusterNetworkConfig %s: %s; the watch will bring it", NAME, e)
        return False, None


def add_watch(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    """Keep `settings` current: the object named `default`; its deletion brings the base back."""

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry, field="metadata.name", value=NAME)
    async def config_changed(body: kopf.Body, type: str | None, **_: Any) -> None:
        settings.update(None if type == "DELETED" else dict(body))
