"""parse_input_uri: what a submission may name, decided without the network."""

from __future__ import annotations

import pytest

from gpuorch.inputs import HttpUri, InputPolicy, InputRejected, S3Uri, parse_input_uri

POLICY = InputPolicy(allowed_buckets={"gpuorch-inputs"})
LOCAL = InputPolicy(allowed_buckets={"gpuorch-inputs"}, allow_insecure_local=True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("s3://gpuorch-inputs/jobs/a.png", S3Uri("gpuorch-inputs", "jobs/a.png")),
        ("s3://gpuorch-inputs/odd?name#1.png", S3Uri("gpuorch-inputs", "odd?name#1.png")),
        ("S3://gpuorch-inputs/a.png", S3Uri("gpuorch-inputs", "a.png")),
        ("https://images.example.com/a.png", HttpUri("https", "images.example.com", 443, "/a.png")),
        ("HTTPS://Images.Example.COM:8443/a.png?x=1#frag", HttpUri("https", "images.example.com", 8443, "/a.png?x=1")),
        ("https://images.example.com", HttpUri("https", "images.example.com", 443, "/")),
        ("https://images.example.com./a", HttpUri("https", "images.example.com", 443, "/a")),
        ("https://8.8.8.8/a.png", HttpUri("https", "8.8.8.8", 443, "/a.png")),
        ("https://[2606:4700::1111]/a.png", HttpUri("https", "2606:4700::1111", 443, "/a.png")),
        ("https://[::ffff:8.8.8.8]/a.png", HttpUri("https", "::ffff:808:808", 443, "/a.png")),
    ],
)
def test_accepted(text: str, expected: object) -> None:
    assert parse_input_uri(text, POLICY) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("ftp://example.com/a.png", "must start with s3:// or https://"),
        ("file:///etc/passwd", "must start with"),
        ("gopher://example.com/", "must start with"),
        ("https:/example.com/a.png", "must start with"),
        ("http://example.com/a.png", "plain http://"),
        ("s3://other-bucket/a.png", "bucket 'other-bucket' is not one inputs may be read from"),
        ("s3://gpuorch-inputs/", "needs an object key"),
        ("s3://gpuorch-inputs", "needs an object key"),
        ("s3://Bad_Bucket/a.png", "not a valid S3 bucket name"),
        ("https://user:pw@example.com/a.png", "credentials"),
        ("https://example.com@169.254.169.254/", "credentials"),
        ("https:///a.png", "no host"),
        ("https://example.com:0/", "port is not valid"),
        ("https://example.com:70000/", "port is not valid"),
        ("https://exa mple.com/", "spaces"),
        ("https://example.com/\r\nX-Injected: 1", "control"),
        ("https://bücher.example/", "non-ASCII"),
        ("https://" + "a" * 2100 + ".com/", "longer than"),
        ("https://-bad-.example.com/", "not a valid name"),
        # Cloud metadata, loopback and private ranges, in every spelling resolvers accept.
        ("https://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://127.0.0.1/", "loopback"),
        ("https://127.8.9.10/", "loopback"),
        ("https://10.0.0.5/", "private"),
        ("https://172.16.3.4/", "private"),
        ("https://192.168.1.1/", "private"),
        ("https://100.64.0.1/", "not a globally routable"),
        ("https://0.0.0.0/", "unspecified"),
        ("https://224.0.0.251/", "multicast"),
        ("https://240.0.0.1/", "reserved"),
        ("https://[::1]/", "loopback"),
        ("https://[::]/", "unspecified"),
        ("https://[fe80::1]/", "link-local"),
        ("https://[fe80::1%25eth0]/", "zone"),
        ("https://[fd00:ec2::254]/", "private"),
        ("https://[ff02::1]/", "multicast"),
        ("https://[::ffff:127.0.0.1]/", "IPv4-mapped form of 127.0.0.1, a loopback"),
        ("https://[::ffff:169.254.169.254]/", "IPv4-mapped form of 169.254.169.254, a link-local"),
        ("https://[::ffff:7f00:1]/", "IPv4-mapped form of 127.0.0.1"),
        ("https://[64:ff9b::a9fe:a9fe]/", "NAT64 form of 169.254.169.254"),
        ("https://[2002:7f00:1::]/", "6to4 form of 127.0.0.1"),
        ("https://[::127.0.0.1]/", "IPv4-compatible form of 127.0.0.1"),
        ("https://2130706433/", "non-standard spelling"),
        ("https://0177.0.0.1/", "non-standard spelling"),
        ("https://0x7f.0.0.1/", "non-standard spelling"),
        ("https://0x7f000001/", "non-standard spelling"),
        ("https://127.1/", "non-standard spelling"),
        ("https://127.000.000.001/", "non-standard spelling"),
        ("https://169.254.169.254./", "link-local"),
    ],
)
def test_rejected(text: str, reason: str) -> None:
    with pytest.raises(InputRejected) as caught:
        parse_input_uri(text, POLICY)
    assert reason in caught.value.reason


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://127.0.0.1:9000/a.png", HttpUri("http", "127.0.0.1", 9000, "/a.png")),
        ("http://localhost/a.png", HttpUri("http", "localhost", 80, "/a.png")),
        ("https://[::1]:8443/a", HttpUri("https", "::1", 8443, "/a")),
    ],
)
def test_local_opt_in_allows_http_and_loopback(text: str, expected: HttpUri) -> None:
    assert parse_input_uri(text, LOCAL) == expected


@pytest.mark.parametrize(
    "text", ["http://169.254.169.254/", "http://10.0.0.1/", "http://[::ffff:192.168.0.1]/", "http://2130706433/"]
)
def test_local_opt_in_still_refuses_everything_but_loopback(text: str) -> None:
    with pytest.raises(InputRejected):
        parse_input_uri(text, LOCAL)


def test_host_header_and_url_keep_non_default_ports() -> None:
    uri = parse_input_uri("https://[2606:4700::1111]:8443/x?y=1", POLICY)
    assert isinstance(uri, HttpUri)
    assert uri.host_header == "[2606:4700::1111]:8443"
    assert uri.url == "https://[2606:4700::1111]:8443/x?y=1"
    assert parse_input_uri("https://example.com/x", POLICY).host_header == "example.com"
