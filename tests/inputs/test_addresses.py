"""address_refusal and resolve_public: every address a name resolves to must be public."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from gpuorch.inputs import InputRejected, InputUnavailable, address_refusal, resolve_public


@pytest.mark.parametrize(
    ("address", "allow_loopback", "expected"),
    [
        ("8.8.8.8", False, None),
        ("2606:4700::1111", False, None),
        ("::ffff:8.8.8.8", False, None),
        ("127.0.0.1", False, "a loopback address"),
        ("127.0.0.1", True, None),
        ("::1", True, None),
        ("::ffff:127.0.0.1", True, None),
        ("169.254.169.254", True, "a link-local address (where cloud metadata services answer)"),
        ("fd00:ec2::254", False, "a private address"),
        ("10.1.2.3", True, "a private address"),
        ("192.0.2.1", False, "a private address"),  # documentation range
        ("100.100.100.200", False, "not a globally routable address"),  # Alibaba metadata, CGNAT range
        ("0.0.0.0", False, "an unspecified address"),
        ("255.255.255.255", False, "a reserved address"),
        ("239.1.1.1", False, "a multicast address"),
        ("::ffff:10.0.0.1", False, "the IPv4-mapped form of 10.0.0.1, a private address"),
        ("64:ff9b::808:808", False, "a reserved address"),  # NAT64 of a public address: still odd
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False, "the Teredo form of 192.0.2.45, a private address"),
    ],
)
def test_address_refusal(address: str, allow_loopback: bool, expected: str | None) -> None:
    assert address_refusal(ipaddress.ip_address(address), allow_loopback=allow_loopback) == expected


def _resolver(answers: dict[str, list[str]]):
    calls: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return answers[host]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


def test_public_name_resolves_to_its_first_address() -> None:
    resolver = _resolver({"images.example.com": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]})
    assert resolve_public("images.example.com", 443, resolver=resolver) == ipaddress.ip_address("93.184.215.14")


@pytest.mark.parametrize(
    ("answers", "reason"),
    [
        (["127.0.0.1"], "resolves to 127.0.0.1, which is a loopback address"),
        (["::1"], "loopback"),
        (["169.254.169.254"], "link-local"),
        (["fe80::1%eth0"], "link-local"),
        (["93.184.215.14", "10.0.0.7"], "resolves to 10.0.0.7, which is a private address"),
        (["::ffff:127.0.0.1"], "IPv4-mapped form of 127.0.0.1"),
        ([], "does not resolve"),
        (["not-an-address"], "not an address"),
    ],
)
def test_name_refused_when_any_address_is_not_public(answers: list[str], reason: str) -> None:
    with pytest.raises(InputRejected) as caught:
        resolve_public("evil.example.com", 443, resolver=_resolver({"evil.example.com": answers}))
    assert reason in caught.value.reason


def test_literal_addresses_skip_the_resolver() -> None:
    resolver = _resolver({})
    with pytest.raises(InputRejected, match="address 127.0.0.1 is a loopback"):
        resolve_public("127.0.0.1", 443, resolver=resolver)
    assert resolve_public("127.0.0.1", 443, resolver=resolver, allow_loopback=True) == ipaddress.ip_address(
        "127.0.0.1"
    )
    assert resolver.calls == []


def test_unknown_name_is_permanent_but_a_resolver_hiccup_is_transient() -> None:
    with pytest.raises(InputRejected, match="does not resolve"):
        resolve_public("nowhere.example", 443, resolver=_resolver({}))

    def flaky(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    with pytest.raises(InputUnavailable, match="could not resolve"):
        resolve_public("images.example.com", 443, resolver=flaky)
