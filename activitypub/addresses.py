"""Which IP addresses and URL hosts a guarded fetch may reach: the SSRF classifier.

Two questions are answered here, both without any network access:

* `is_global_address(ip)`: may we connect to this address? Only globally reachable unicast
  addresses are allowed; translation and tunnel prefixes (NAT64, 6to4) are judged by the IPv4
  address they embed.
* `ip_literal(host)`: is this URL host an IP address in any spelling a C resolver would accept
  (`2130706433`, `0x7f000001`, `0177.0.0.1`, `127.1`, `127.0.0.1.`, `[fe80::1%eth0]`)? Such a
  host is converted here and classified directly; it is never handed to a system resolver, whose
  idea of a "number" varies between libcs.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from urllib.parse import unquote

from .errors import AddressRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Written out instead of trusting `ip.is_global` alone: the stdlib's tables changed between
# Python releases (3.11 calls multicast and 192.0.0.0/24 global), and a security boundary
# should not move with the interpreter. The stdlib check is applied as well, belt and braces.
_DENIED_V4 = tuple(
    ipaddress.IPv4Network(net)
    for net in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local (cloud metadata lives here)
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation TEST-NET-1
        "192.31.196.0/24",  # AS112
        "192.52.193.0/24",  # AMT
        "192.88.99.0/24",  # deprecated 6to4 relay anycast
        "192.168.0.0/16",  # private
        "192.175.48.0/24",  # AS112 direct delegation
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation TEST-NET-2
        "203.0.113.0/24",  # documentation TEST-NET-3
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and 255.255.255.255 broadcast
    )
)

_DENIED_V6 = tuple(
    ipaddress.IPv6Network(net)
    for net in (
        "::/96",  # unspecified, loopback and the deprecated IPv4-compatible form
        "::ffff:0:0/96",  # IPv4-mapped: the kernel would connect to the embedded IPv4
        "::ffff:0:0:0/96",  # SIIT IPv4-translated
        "64:ff9b:1::/48",  # local-use NAT64 (RFC 8215): not globally reachable by definition
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments, including Teredo 2001::/32
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation (RFC 9637)
        "5f00::/16",  # segment routing SIDs
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # deprecated site-local
        "ff00::/8",  # multicast
    )
)

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")


def is_global_address(ip: IPAddress) -> bool:
    """True only for an address a server on the public internet may be reached at.

    NAT64 (64:ff9b::/96) and 6to4 (2002::/16) addresses are judged by the IPv4 address they
    carry, because a gateway will forward to exactly that. IPv4-mapped and IPv4-compatible
    addresses, Teredo and any address with a zone id are refused outright: no public peer
    publishes one, and each is a known way to smuggle a private IPv4 past a naive check.
    """
    if isinstance(ip, ipaddress.IPv4Address):
        if any(ip in net for net in _DENIED_V4):
            return False
        return ip.is_global
    if ip.scope_id is not None:
        return False
    if ip in _NAT64:
        return is_global_address(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip in _SIX_TO_FOUR:
        return is_global_address(ipaddress.IPv4Address((int(ip) >> 80) & 0xFFFFFFFF))
    if any(ip in net for net in _DENIED_V6):
        return False
    return ip.is_global


_V4_PART = re.compile(r"0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*")
_NUMERIC_LABEL = re.compile(r"[0-9]+|0[xX][0-9a-fA-F]*")


def _parse_inet_aton(text: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address `inet_aton` would read from `text`, or None if it is not one.

    One to four parts, each decimal, octal (leading 0) or hex (0x); the last part fills the
    remaining bytes, so `127.1` is 127.0.0.1 and `2130706433` is 127.0.0.1.
    """
    parts = text.split(".")
    if not 1 <= len(parts) <= 4 or not all(_V4_PART.fullmatch(part) for part in parts):
        return None
    values: list[int] = []
    for part in parts:
        if part[:2] in ("0x", "0X"):
            values.append(int(part[2:] or "0", 16))
        elif len(part) > 1 and part[0] == "0":
            values.append(int(part[1:], 8))
        else:
            values.append(int(part))
    *head, last = values
    if any(value > 0xFF for value in head) or last >= 1 << (8 * (4 - len(head))):
        return None
    number = last
    for index, value in enumerate(head):
        number |= value << (8 * (3 - index))
    return ipaddress.IPv4Address(number)


# Pure and asked for every outbound request (a fan-out asks for the same hosts again and
# again); a refusal raises and is not cached.
@functools.lru_cache(maxsize=4096)
def ip_literal(host: str) -> IPAddress | None:
    """The IP address a URL host spells, in any form a resolver would accept, or None for a name.

    Raises AddressRefused for a host that looks numeric but is no valid address (`1.2.3.256`,
    `0x`, `1.2.3.4.5`): as in the WHATWG URL standard, a host whose last label is a number is an
    IPv4 address or an error, never a name to look up.
    """
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if ":" in text:
        # An IPv6 literal; the zone id may arrive percent-encoded (`fe80::1%25eth0`).
        try:
            return ipaddress.IPv6Address(unquote(text))
        except ValueError as exc:
            raise AddressRefused(f"invalid IPv6 literal {host!r}") from exc
    if text.endswith("."):
        text = text[:-1]
    last_label = text.rpartition(".")[2]
    if not _NUMERIC_LABEL.fullmatch(last_label):
        return None
    address = _parse_inet_aton(text)
    if address is None:
        raise AddressRefused(f"numeric host {host!r} is not a valid IPv4 address")
    return address
