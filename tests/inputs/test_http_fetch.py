"""fetch_input over HTTP(S) against real local servers: SSRF probes, redirects, limits, timeouts, TLS."""

from __future__ import annotations

import socket
import time

import pytest

from gpuorch.inputs import InputPolicy, InputRejected, InputUnavailable, fetch_image, fetch_input

from .conftest import png_bytes

LOCAL = InputPolicy(allowed_buckets={"gpuorch-inputs"}, allow_insecure_local=True,
                    connect_timeout=1.0, read_timeout=1.0, total_timeout=5.0)
DEFAULT = InputPolicy(allowed_buckets={"gpuorch-inputs"})


class Resolver:
    """A resolver the test controls, which also counts lookups."""

    def __init__(self, answers: dict[str, list[list[str]] | list[str]]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        answer = self.answers.get(host)
        if answer is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        if answer and isinstance(answer[0], list):  # one answer per lookup: a rebinding name
            return answer[min(len(self.calls), len(answer)) - 1]
        return answer  # type: ignore[return-value]


def test_fetches_from_a_local_server_when_opted_in(serve) -> None:
    server = serve()
    image = png_bytes()
    server.reply("/a.png", body=image, headers={"Content-Type": "image/png"})
    fetched = fetch_image(server.url("/a.png"), LOCAL)
    assert fetched.data == image
    assert (fetched.info.format, fetched.info.width, fetched.info.height) == ("PNG", 8, 6)
    path, headers = server.requests[0]
    assert headers["Host"] == f"127.0.0.1:{server.port}"
    assert headers["Accept-Encoding"] == "identity"


@pytest.mark.parametrize("host", ["127.0.0.1", "[::ffff:127.0.0.1]", "2130706433", "0177.0.0.1", "localhost"])
def test_default_policy_never_reaches_loopback(serve, host: str) -> None:
    server = serve()
    server.reply("/a.png", body=png_bytes())
    for scheme in ("http", "https"):
        with pytest.raises(InputRejected):
            fetch_input(f"{scheme}://{host}:{server.port}/a.png", DEFAULT)
    assert server.requests == []


def test_name_resolving_to_loopback_is_refused_before_connecting(serve) -> None:
    server = serve()
    server.reply("/a.png", body=png_bytes())
    resolver = Resolver({"images.example.com": ["127.0.0.1"]})
    with pytest.raises(InputRejected, match="resolves to 127.0.0.1, which is a loopback address"):
        fetch_input(f"https://images.example.com:{server.port}/a.png", DEFAULT, resolver=resolver)
    assert resolver.calls == ["images.example.com"]
    assert server.requests == []


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/iam/security-credentials/", "link-local"),
        ("http://10.1.2.3/a.png", "private"),
        ("http://[::ffff:10.0.0.1]/a.png", "IPv4-mapped form of 10.0.0.1"),
        ("http://[fd00:ec2::254]/latest/", "private"),
        ("http://0251.0376.0251.0376/", "non-standard spelling"),
        ("http://internal.corp.example/a.png", "resolves to 10.20.30.40, which is a private address"),
        ("s3://gpuorch-inputs/a.png", "redirected away from the web"),
        ("file:///etc/passwd", "must start with"),
    ],
)
def test_redirects_are_vetted_like_the_first_url(serve, location: str, reason: str) -> None:
    server = serve()
    server.redirect("/start", location)
    resolver = Resolver({"internal.corp.example": ["10.20.30.40"]})
    with pytest.raises(InputRejected) as caught:
        fetch_input(server.url("/start"), LOCAL, resolver=resolver)
    assert reason in caught.value.reason
    assert [path for path, _ in server.requests] == ["/start"]


def test_permitted_redirects_are_followed_by_hand(serve) -> None:
    server = serve()
    image = png_bytes()
    server.redirect("/start", "/middle", status=301)
    server.redirect("/middle", server.url("/a.png"), status=307)
    server.reply("/a.png", body=image)
    assert fetch_input(server.url("/start"), LOCAL) == image
    assert [path for path, _ in server.requests] == ["/start", "/middle", "/a.png"]


def test_redirect_loops_stop_after_the_limit(serve) -> None:
    server = serve()
    server.redirect("/loop", "/loop")
    with pytest.raises(InputRejected, match="more than 3 redirects"):
        fetch_input(server.url("/loop"), LOCAL)
    assert len(server.requests) == 4


def test_declared_size_over_the_limit_is_refused(serve) -> None:
    server = serve()
    server.reply("/big", body=b"x" * 2048)
    policy = InputPolicy(allow_insecure_local=True, max_bytes=1024)
    with pytest.raises(InputRejected, match="2048 bytes, over the limit of 1024"):
        fetch_input(server.url("/big"), policy)


def test_undeclared_size_is_capped_while_streaming(serve) -> None:
    server = serve()
    server.reply("/big", chunks=[b"x" * 600] * 4)  # no Content-Length: the cap must hold mid-stream
    policy = InputPolicy(allow_insecure_local=True, max_bytes=1024)
    with pytest.raises(InputRejected, match="over the limit of 1024 bytes"):
        fetch_input(server.url("/big"), policy)
    server.reply("/fits", chunks=[b"y" * 500] * 2)
    assert fetch_input(server.url("/fits"), policy) == b"y" * 1000


@pytest.mark.parametrize(("status", "error"), [(404, InputRejected), (403, InputRejected),
                                               (429, InputUnavailable), (503, InputUnavailable)])
def test_error_answers_are_classified(serve, status: int, error: type[Exception]) -> None:
    server = serve()
    server.reply("/x", status=status, body=b"nope")
    with pytest.raises(error, match=str(status)):
        fetch_input(server.url("/x"), LOCAL)


def test_a_stalled_body_hits_the_read_timeout(serve) -> None:
    server = serve()
    server.reply("/stall", chunks=[b"abc", b"def"], pause=3.0)
    policy = InputPolicy(allow_insecure_local=True, read_timeout=0.2)
    started = time.monotonic()
    with pytest.raises(InputUnavailable, match="timed out"):
        fetch_input(server.url("/stall"), policy)
    assert time.monotonic() - started < 2.0


def test_a_dripping_body_hits_the_total_deadline(serve) -> None:
    server = serve()
    server.reply("/drip", chunks=[b"z"] * 200, pause=0.01)  # never idle long enough for read_timeout
    policy = InputPolicy(allow_insecure_local=True, read_timeout=1.0, total_timeout=0.3)
    started = time.monotonic()
    with pytest.raises(InputUnavailable, match="took longer than 0.3s"):
        fetch_input(server.url("/drip"), policy)
    assert time.monotonic() - started < 1.5


def test_connection_refused_is_transient() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(InputUnavailable, match="could not connect"):
        fetch_input(f"http://127.0.0.1:{port}/a.png", LOCAL)


def test_tls_verifies_the_name_while_connecting_to_the_checked_address(serve, pki) -> None:
    server = serve(ssl_context=pki.server_context)
    image = png_bytes()
    server.reply("/a.png", body=image)
    policy = InputPolicy(allow_insecure_local=True, ca_certs=str(pki.ca_file), connect_timeout=1.0)
    # ``images.test`` exists only in this resolver, so the request can only have gone to the
    # address it answered; a second answer (a rebinding attempt) is never asked for.
    resolver = Resolver({"images.test": [["127.0.0.1"], ["10.0.0.1"]]})
    assert fetch_input(f"https://images.test:{server.port}/a.png", policy, resolver=resolver) == image
    assert resolver.calls == ["images.test"]
    assert server.requests[0][1]["Host"] == f"images.test:{server.port}"


def test_tls_refuses_a_certificate_for_another_name(serve, pki) -> None:
    server = serve(ssl_context=pki.server_context)
    server.reply("/a.png", body=png_bytes())
    resolver = Resolver({"other.test": ["127.0.0.1"], "images.test": ["127.0.0.1"]})
    policy = InputPolicy(allow_insecure_local=True, ca_certs=str(pki.ca_file))
    with pytest.raises(InputRejected, match="TLS verification failed for other.test"):
        fetch_input(f"https://other.test:{server.port}/a.png", policy, resolver=resolver)
    untrusted = InputPolicy(allow_insecure_local=True)  # the public CA bundle does not know our CA
    with pytest.raises(InputRejected, match="TLS verification failed"):
        fetch_input(f"https://images.test:{server.port}/a.png", untrusted, resolver=resolver)
    assert server.requests == []
