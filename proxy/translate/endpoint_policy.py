"""Which server-side function endpoints the proxy may call (pure; no I/O).

A function with an `endpoint` is executed by the proxy itself, so a client's
Settings chooses URLs the proxy will request from inside the operator's
network. Two checks keep that from becoming a way in:

- at Settings time, the URL's host must be on the operator's list
  (`OPENAI_PROXY_FUNCTION_HOSTS`, empty by default: no endpoint at all);
- at call time, every address the host resolves to must be public, unless
  that address (or a network holding it) is itself on the list. A listed
  *name* never opens loopback, link-local or private space: a name can be
  pointed anywhere by whoever controls its DNS, an address cannot.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

import attrs

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOWED_SCHEMES = ("http", "https")
ALLOWED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


class EndpointRefused(ValueError):
    """The endpoint may not be called; the message says why (no secrets in it)."""


def _address(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


@attrs.frozen
class FunctionHosts:
    """The operator's list: host names (exact, any case), addresses and networks."""

    names: frozenset[str] = frozenset()
    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, entries: tuple[str, ...] | list[str]) -> FunctionHosts:
        """Build from `OPENAI_PROXY_FUNCTION_HOSTS` entries; ValueError names a bad one."""
        names: set[str] = set()
        networks: list[Network] = []
        for raw in entries:
            entry = raw.strip().lower()
            if not entry:
                continue
            if "/" in entry or _address(entry) is not None:
                try:
                    networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                except ValueError:
                    raise ValueError(f"{raw!r} is not an address or network") from None
                continue
            labels = entry.rstrip(".").split(".")
            if not all(label and len(label) <= 63 and all(c.isalnum() or c == "-" for c in label) for label in labels):
                raise ValueError(f"{raw!r} is not a host name, address or network")
            names.add(entry.rstrip("."))
        return cls(frozenset(names), tuple(networks))

    def __bool__(self) -> bool:
        return bool(self.names or self.networks)

    def _listed_address(self, address: Address) -> bool:
        return any(address in network for network in self.networks if network.version == address.version)

    def check_url(self, url: str) -> str:
        """Settings-time check; returns the host, or raises EndpointRefused."""
        try:
            parts = urlsplit(url)
            host = parts.hostname
            parts.port  # noqa: B018 - raises on a malformed port
        except ValueError:
            raise EndpointRefused(f"{url!r} is not a valid URL") from None
        if parts.scheme not in ALLOWED_SCHEMES or not host:
            raise EndpointRefused("endpoint url must be an http:// or https:// URL with a host")
        if parts.username is not None or parts.password is not None:
            raise EndpointRefused("endpoint url must not carry credentials; use endpoint.headers")
        address = _address(host)
        listed = self._listed_address(address) if address is not None else host.rstrip(".") in self.names
        if not listed:
            raise EndpointRefused(f"endpoint host {host!r} is not on the function host allowlist (OPENAI_PROXY_FUNCTION_HOSTS)")
        return host

    def check_address(self, host: str, resolved: str) -> None:
        """Call-time check of one address `host` resolved to; raises EndpointRefused."""
        address = _address(resolved)
        if address is None:
            raise EndpointRefused(f"endpoint host {host!r} resolved to something that is not an address")
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # ::ffff:127.0.0.1 is loopback all the same
        if self._listed_address(address):
            return
        if not address.is_global or address.is_multicast:
            # Loopback, link-local (cloud metadata at 169.254.169.254), private,
            # shared and reserved space: only by address, never by name.
            raise EndpointRefused(
                f"endpoint host {host!r} resolves to a non-public address ({address}); "
                "list that address explicitly to allow it"
            )
        if host.rstrip(".").lower() not in self.names:
            raise EndpointRefused(f"endpoint host {host!r} is not on the function host allowlist")
