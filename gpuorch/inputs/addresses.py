"""Which IP addresses a job input may be fetched from, and name resolution that checks them all."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence

from gpuorch.inputs.errors import InputRejected, InputUnavailable

__all__ = ["IPAddress", "Resolver", "address_refusal", "resolve_public", "system_resolver"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> every address the name resolves to, as text; raises socket.gaierror.
Resolver = Callable[[str, int], Sequence[str]]

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address an IPv6 form carries (and reaches through a gateway or a dual-stack socket)."""
    if ip.ipv4_mapped is not None:
        return "IPv4-mapped", ip.ipv4_mapped
    if ip in _NAT64:
        return "NAT64", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return "6to4", ip.sixtofour
    if ip.teredo is not None:
        return "Teredo", ip.teredo[1]
    if ip in _IPV4_COMPATIBLE and int(ip) > 1:  # ``::`` and ``::1`` are IPv6's own
        return "IPv4-compatible", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


# Checked in order; the first match names the refusal. The final catch-all (``is_global``) also
# covers ranges such as 100.64.0.0/10 (carrier-grade NAT) that are neither private nor public.
_CHECKS: tuple[tuple[str, Callable[[IPAddress], bool]], ...] = (
    ("an unspecified address", lambda ip: ip.is_unspecified),
    ("a loopback address", lambda ip: ip.is_loopback),
    ("a link-local address (where cloud metadata services answer)", lambda ip: ip.is_link_local),
    ("a multicast address", lambda ip: ip.is_multicast),
    ("a reserved address", lambda ip: ip.is_reserved),
    ("a private address", lambda ip: ip.is_private),
    ("not a globally routable address", lambda ip: not ip.is_global),
)


def address_refusal(ip: IPAddress, *, allow_loopback: bool = False) -> str | None:
    """Why ``ip`` must not be fetched from (a phrase such as "a loopback address"), or None if public."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            form, inner = embedded
            reason = address_refusal(inner, allow_loopback=allow_loopback)
            if reason is not None:
                return f"the {form} form of {inner}, {reason}"
            if form == "IPv4-mapped":
                return None  # exactly the public IPv4 address it maps
    if allow_loopback and ip.is_loopback:
        return None
    return next((reason for reason, applies in _CHECKS if applies(ip)), None)


def system_resolver(host: str, port: int) -> Sequence[str]:
    """Resolve with the operating system, as a connection would."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _parse_address(text: str) -> IPAddress:
    # getaddrinfo can answer scoped IPv6 (``fe80::1%eth0``); the scope does not change the verdict.
    return ipaddress.ip_address(text.split("%", 1)[0])


def resolve_public(
    host: str, port: int, *, resolver: Resolver = system_resolver, allow_loopback: bool = False
) -> IPAddress:
    """The address to connect to for ``host``, after checking every address the name has.

    One refused address refuses the name: a name that mixes public and private answers is an
    attack or a misconfiguration, and the caller connects to the very address checked here.
    """
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        try:
            answers = resolver(host, port)
        except socket.gaierror as exc:
            if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
                raise InputRejected(f"host {host!r} does not resolve") from exc
            raise InputUnavailable(f"could not resolve {host!r}: {exc}") from exc
        except OSError as exc:
            raise InputUnavailable(f"could not resolve {host!r}: {exc}") from exc
        try:
            addresses = [_parse_address(a) for a in answers]
        except ValueError as exc:
            raise InputRejected(f"host {host!r} resolves to something that is not an address") from exc
        if not addresses:
            raise InputRejected(f"host {host!r} does not resolve")
    for address in addresses:
        reason = address_refusal(address, allow_loopback=allow_loopback)
        if reason is None:
            continue
        if literal is not None:
            raise InputRejected(f"address {host} is {reason}")
        raise InputRejected(f"host {host!r} resolves to {address}, which is {reason}")
    return addresses[0]
