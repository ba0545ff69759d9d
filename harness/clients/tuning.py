"""The knobs every fixed variant in the catalog sets with its own library's API."""
from __future__ import annotations

import ssl
from dataclasses import asdict, dataclass
from functools import cached_property


@dataclass(frozen=True)
class ClientTuning:
    """Seconds and connection counts, as the seed's fixed client set them.

    ``max_in_flight_per_host`` is for libraries whose only per-host knob caps
    every connection, not just idle ones (aiohttp): it must exceed the bursts
    of the schedule, or requests queue and the schedule stretches.
    """

    connect_timeout: float = 2.0
    read_timeout: float = 5.0
    idle_timeout: float = 0.5
    max_idle_per_host: int = 2
    max_idle_total: int = 5
    max_hosts: int = 10
    max_in_flight_per_host: int = 50
    ca_file: str | None = None  # HTTPS: the CA to trust (the harness's own, made by trustme); None: the system's

    def as_dict(self) -> dict:
        return asdict(self)

    @cached_property
    def ssl_context(self) -> ssl.SSLContext | None:
        """A client context trusting ``ca_file`` (host names checked), made once; None without one:
        each library's own default then."""
        return ssl.create_default_context(cafile=self.ca_file) if self.ca_file else None

    @property
    def verify(self) -> str | bool:
        """requests' ``verify=``: the CA file, or True (its own bundle)."""
        return self.ca_file or True


def tuning_for(delay: float, idle_timeout: float, ca_file: str | None = None) -> ClientTuning:
    """Knobs for a server delay (s): reads time out well after the delay; ``ca_file`` for HTTPS."""
    return ClientTuning(read_timeout=max(1.0, 5 * delay), idle_timeout=idle_timeout, ca_file=ca_file)
