"""Parsing and vetting an input URI without touching the network (usable at submission time)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from gpuorch.aws.s3 import S3Uri, parse_s3_uri
from gpuorch.inputs.addresses import address_refusal
from gpuorch.inputs.errors import InputRejected
from gpuorch.inputs.policy import InputPolicy

__all__ = ["HttpUri", "S3Uri", "parse_input_uri"]

MAX_URI_LENGTH = 2048
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
# Labels made only of digits or hex: resolvers read such a host as an IPv4 address in one of the
# old spellings (``2130706433``, ``0177.0.0.1``, ``0x7f.1``), which hide what they point at.
_NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+")


@dataclass(frozen=True)
class HttpUri:
    """An ``https://`` (or, when the policy allows it, ``http://``) URL split for a pinned request."""

    scheme: Literal["https", "http"]
    host: str  # a lower-case DNS name or an IP address, without brackets
    port: int
    target: str  # path and query, as sent on the request line

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host_header}{self.target}"

    def __str__(self) -> str:
        return self.url


def _parse_s3(text: str, policy: InputPolicy) -> S3Uri:
    try:
        uri = parse_s3_uri(text)
    except ValueError as exc:
        raise InputRejected(str(exc)) from None
    if uri.bucket not in policy.allowed_buckets:
        raise InputRejected(f"bucket {uri.bucket!r} is not one inputs may be read from")
    return uri


def _check_host(host: str, policy: InputPolicy) -> str:
    if ":" in host:  # urlsplit only yields a colon for a bracketed IPv6 literal
        try:
            ip = ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise InputRejected(f"{host!r} is not a valid IPv6 address") from exc
    else:
        host = host.rstrip(".")
        labels = host.split(".")
        if not host:
            raise InputRejected("the URL has no host")
        if all(_NUMERIC_LABEL.fullmatch(label) for label in labels):
            try:
                ip = ipaddress.IPv4Address(host)
            except ValueError as exc:
                raise InputRejected(
                    f"host {host!r} is a numeric address in a non-standard spelling"
                ) from exc
        else:
            try:
                ascii_host = host.encode("idna").decode("ascii")
            except UnicodeError as exc:
                raise InputRejected(f"host {host!r} is not a valid name") from exc
            if len(ascii_host) > 253 or not all(_LABEL.fullmatch(label) for label in ascii_host.split(".")):
                raise InputRejected(f"host {host!r} is not a valid name")
            return ascii_host
    reason = address_refusal(ip, allow_loopback=policy.allow_insecure_local)
    if reason is not None:
        raise InputRejected(f"address {host} is {reason}")
    return str(ip)


def _parse_http(text: str, policy: InputPolicy) -> HttpUri:
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme == "http" and not policy.allow_insecure_local:
        raise InputRejected("plain http:// URLs are not accepted; use https://")
    if "@" in parts.netloc:
        raise InputRejected("URLs with credentials (user@host) are not accepted")
    if parts.hostname is None:
        raise InputRejected("the URL has no host")
    if "%" in parts.hostname:
        raise InputRejected("IPv6 zone identifiers are not accepted")
    try:
        port = parts.port
    except ValueError as exc:
        raise InputRejected(f"the URL's port is not valid: {exc}") from exc
    if port == 0:
        raise InputRejected("the URL's port is not valid: 0")
    host = _check_host(parts.hostname, policy)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return HttpUri(scheme=scheme, host=host, port=port or (443 if scheme == "https" else 80),
                   target=target)


def parse_input_uri(text: str, policy: InputPolicy) -> S3Uri | HttpUri:
    """Check an input URI's form and the parts of the policy that need no network.

    Literal IP addresses are vetted here; names are vetted again, with every address they
    resolve to, when fetched. Raises InputRejected with the reason.
    """
    if not isinstance(text, str) or not text:
        raise InputRejected("the input URI is empty")
    if len(text) > MAX_URI_LENGTH:
        raise InputRejected(f"the input URI is longer than {MAX_URI_LENGTH} characters")
    if not text.isascii() or any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        raise InputRejected("the input URI holds spaces, control or non-ASCII characters; percent-encode them")
    scheme = text.partition(":")[0].lower()
    if scheme == "s3" and text[:5].lower() == "s3://":
        return _parse_s3("s3://" + text[5:], policy)
    if scheme in ("https", "http") and text[len(scheme):len(scheme) + 3] == "://":
        return _parse_http(text, policy)
    accepted = "s3:// or https://" + (" or http://" if policy.allow_insecure_local else "")
    raise InputRejected(f"input URIs must start with {accepted}")
