"""The SSRF classifier and the parsing of IP-literal URL hosts, checked without any network."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from activitypub.addresses import ip_literal, is_global_address
from activitypub.errors import AddressRefused

REFUSED = [
    ("loopback v4", "127.0.0.1"),
    ("loopback v4 elsewhere in /8", "127.255.1.2"),
    ("this network", "0.0.0.0"),
    ("this network /8", "0.1.2.3"),
    ("private 10/8", "10.0.0.1"),
    ("private 172.16/12", "172.16.0.1"),
    ("private 172.16/12 top", "172.31.255.254"),
    ("private 192.168/16", "192.168.1.1"),
    ("link-local / metadata", "169.254.169.254"),
    ("CGNAT", "100.64.0.1"),
    ("CGNAT top", "100.127.255.254"),
    ("IETF protocol assignments", "192.0.0.8"),
    ("TEST-NET-1", "192.0.2.1"),
    ("TEST-NET-2", "198.51.100.1"),
    ("TEST-NET-3", "203.0.113.1"),
    ("benchmarking", "198.18.0.1"),
    ("benchmarking top", "198.19.255.254"),
    ("multicast v4", "224.0.0.1"),
    ("multicast v4 top", "239.255.255.250"),
    ("reserved 240/4", "240.0.0.1"),
    ("broadcast", "255.255.255.255"),
    ("6to4 relay anycast", "192.88.99.1"),
    ("unspecified v6", "::"),
    ("loopback v6", "::1"),
    ("link-local v6", "fe80::1"),
    ("link-local v6 with zone", "fe80::1%eth0"),
    ("site-local v6", "fec0::1"),
    ("unique local fc", "fc00::1"),
    ("unique local fd", "fd12:3456::1"),
    ("multicast v6", "ff02::1"),
    ("documentation v6", "2001:db8::1"),
    ("documentation v6 3fff", "3fff::1"),
    ("benchmarking v6", "2001:2::1"),
    ("discard-only", "100::1"),
    ("IPv4-mapped loopback", "::ffff:127.0.0.1"),
    ("IPv4-mapped private", "::ffff:10.0.0.1"),
    ("IPv4-mapped public (refused as a form)", "::ffff:8.8.8.8"),
    ("IPv4-compatible loopback", "::127.0.0.1"),
    ("IPv4-compatible public (refused as a form)", "::8.8.8.8"),
    ("NAT64 embedding loopback", "64:ff9b::7f00:1"),
    ("NAT64 embedding private", "64:ff9b::10.0.0.1"),
    ("NAT64 embedding metadata", "64:ff9b::169.254.169.254"),
    ("local-use NAT64", "64:ff9b:1::808:808"),
    ("6to4 embedding private", "2002:a00:1::1"),
    ("6to4 embedding loopback", "2002:7f00:1::"),
    ("6to4 embedding CGNAT", "2002:6440:1::1"),
    ("Teredo", "2001:0:4136:e378:8000:63bf:3fff:fdd2"),
    ("Teredo embedding public", "2001:0:808:808::1"),
    ("ORCHIDv2", "2001:20::1"),
]

ALLOWED = [
    ("public v4", "93.184.216.34"),
    ("public v4 dns", "8.8.8.8"),
    ("public v4 just past 172.16/12", "172.32.0.1"),
    ("public v4 just past CGNAT", "100.128.0.1"),
    ("public v6", "2606:4700:4700::1111"),
    ("NAT64 embedding public", "64:ff9b::8.8.8.8"),
    ("6to4 embedding public", "2002:808:808::1"),
]


@pytest.mark.parametrize(("name", "address"), REFUSED, ids=[row[0] for row in REFUSED])
def test_non_global_addresses_are_refused(name: str, address: str) -> None:
    assert not is_global_address(ipaddress.ip_address(address))


@pytest.mark.parametrize(("name", "address"), ALLOWED, ids=[row[0] for row in ALLOWED])
def test_global_addresses_are_allowed(name: str, address: str) -> None:
    assert is_global_address(ipaddress.ip_address(address))


# Every spelling a C resolver reads as an address; each must come back as that address.
LITERALS = [
    ("decimal", "2130706433", "127.0.0.1"),
    ("hex", "0x7f000001", "127.0.0.1"),
    ("hex upper", "0X7F000001", "127.0.0.1"),
    ("octal first part", "0177.0.0.1", "127.0.0.1"),
    ("all octal", "0177.00.00.01", "127.0.0.1"),
    ("short a.b", "127.1", "127.0.0.1"),
    ("short a.b.c", "127.0.1", "127.0.0.1"),
    ("mixed hex parts", "0x7f.0x0.0x0.0x1", "127.0.0.1"),
    ("trailing dot", "127.0.0.1.", "127.0.0.1"),
    ("short with trailing dot", "10.1.", "10.0.0.1"),
    ("zero", "0", "0.0.0.0"),
    ("metadata decimal", "2852039166", "169.254.169.254"),
    ("private octal", "012.0.0.1", "10.0.0.1"),
    ("bracketed v6", "[::1]", "::1"),
    ("bare v6", "::1", "::1"),
    ("mapped v6", "[::ffff:127.0.0.1]", "::ffff:127.0.0.1"),
    ("zone id percent-encoded", "[fe80::1%25eth0]", "fe80::1%eth0"),
    ("zone id raw", "fe80::1%eth0", "fe80::1%eth0"),
]


@pytest.mark.parametrize(("name", "host", "expected"), LITERALS, ids=[row[0] for row in LITERALS])
def test_ip_literal_spellings_are_converted(name: str, host: str, expected: str) -> None:
    found = ip_literal(host)
    assert found == ipaddress.ip_address(expected)
    assert found is not None and not is_global_address(found)


@pytest.mark.parametrize(
    "host", ["2130706433", "0x7f000001", "0177.0.0.1", "127.1", "127.0.1", "0x7f.0x0.0x0.0x1", "0"]
)
def test_ipv4_spellings_agree_with_inet_aton(host: str) -> None:
    # socket.inet_aton is a pure parser (no lookup); our reading must match the libc's.
    assert ip_literal(host) == ipaddress.IPv4Address(socket.inet_aton(host))


@pytest.mark.parametrize(
    "host", ["1.2.3.256", "1.2.3.4.5", "4294967296", "0x1ffffffff", "08.0.0.1", "example.0x1"]
)
def test_numeric_hosts_that_are_no_address_are_refused(host: str) -> None:
    with pytest.raises(AddressRefused):
        ip_literal(host)


@pytest.mark.parametrize(
    "host", ["example.org", "xn--bcher-kva.example", "1e100.net", "localhost", "example.0x1g"]
)
def test_names_are_not_literals(host: str) -> None:
    assert ip_literal(host) is None


def test_invalid_ipv6_literal_is_refused() -> None:
    with pytest.raises(AddressRefused):
        ip_literal("[::1::2]")
