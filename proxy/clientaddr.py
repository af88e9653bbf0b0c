"""Who the client is, for the logs: the peer address, or what a trusted reverse proxy says.

Behind nginx every peer is nginx. nginx appends the address it saw to
`X-Forwarded-For` (`$proxy_add_x_forwarded_for`), so the header reads
"client, proxy1, proxy2". Anyone can send that header, so it is believed only
when the peer is one of `OPENAI_PROXY_TRUSTED_PROXIES`, and then read from the
right: the first address that is not itself a trusted proxy is the client
(what the nearest untrusted hop claimed to be is all that can be known).
Pure: no sockets.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from functools import lru_cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(trusted: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(each, strict=False) for each in trusted)


def _is_trusted(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)


def client_address(peer: str | None, headers: Iterable[tuple[bytes, bytes]], trusted: tuple[str, ...]) -> str | None:
    """The address to log for a client connected from `peer` with these request headers."""
    networks = _networks(trusted)
    if peer is None or not networks or not _is_trusted(peer, networks):
        return peer
    hops: list[str] = []
    for name, value in headers:
        if name.lower() == b"x-forwarded-for":
            hops += [hop.strip() for hop in value.decode("latin-1").split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, networks):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # not an address: the header is garbage, the peer is what is known
    return hops[0] if hops else peer
