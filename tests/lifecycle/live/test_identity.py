"""The GPU worker's instance id: its setting, else the instance metadata service (an IMDSv2 stand-in), on EC2 only."""

from __future__ import annotations

import http.server
import threading

import pytest

from lifecycle.live.identity import (
    IMDS_ENDPOINT, IdentityError, InstanceMetadata, PlatformSigns, http_request, instance_identity, metadata_endpoint,
    read_platform_signs, runs_on_ec2,
)
from tests.conftest import free_port

NITRO = PlatformSigns(board_asset_tag="i-0af01c0123456789a", sys_vendor="Amazon EC2", bios_vendor="Amazon EC2")
LAPTOP = PlatformSigns(board_asset_tag="Not Specified", sys_vendor="LENOVO", bios_vendor="LENOVO")


def never(*args):
    raise AssertionError(f"no metadata call expected: {args}")


@pytest.mark.parametrize("signs,ec2", [
    (NITRO, True),
    (PlatformSigns(board_asset_tag="i-0af01c0123456789a"), True),  # AWS's documented Nitro sign alone
    (PlatformSigns(sys_vendor="Amazon EC2"), True),
    (PlatformSigns(bios_vendor="Amazon EC2"), True),
    (PlatformSigns(sys_vendor="Xen", hypervisor_uuid="ec2e1916-9099-7caf-fd21-012345abcdef"), True),
    (PlatformSigns(hypervisor_uuid="EC2E1916-9099-7CAF-FD21-012345ABCDEF"), True),
    (LAPTOP, False),
    (PlatformSigns(), False),  # no DMI at all: a container, WSL, a BSD
    (PlatformSigns(sys_vendor="QEMU", board_asset_tag="i-am-not-an-id"), False),
    (PlatformSigns(sys_vendor="Xen", hypervisor_uuid="3f2a8c1e-0000-0000-0000-000000000000"), False),
])
def test_the_machine_says_whether_it_is_an_ec2_instance(signs, ec2):
    assert runs_on_ec2(signs) is ec2


@pytest.mark.parametrize("configured,on_ec2,endpoint", [
    ("", True, IMDS_ENDPOINT),
    ("", False, None),  # off EC2, nobody is asked
    ("http://127.0.0.1:1338/", False, "http://127.0.0.1:1338"),  # a configured one, anywhere
    ("http://[fd00:ec2::254]", True, "http://[fd00:ec2::254]"),  # IPv6-only instances
])
def test_which_metadata_service_is_asked(configured, on_ec2, endpoint):
    assert metadata_endpoint(configured, on_ec2) == endpoint


def test_the_signs_are_read_from_dmi_and_the_hypervisor(tmp_path):
    dmi = tmp_path / "dmi"
    dmi.mkdir()
    (dmi / "board_asset_tag").write_text("i-0af01c0123456789a\n")
    (dmi / "sys_vendor").write_text("Amazon EC2\n")
    (dmi / "bios_vendor").mkdir()  # unreadable as a file: counts as empty

    signs = read_platform_signs(dmi, tmp_path / "no-hypervisor")

    assert signs == PlatformSigns(board_asset_tag="i-0af01c0123456789a", sys_vendor="Amazon EC2")


class Imds(http.server.BaseHTTPRequestHandler):
    """EC2's instance metadata service as IMDSv2 answers: a token by PUT, then data only with that token."""

    instance_id = "i-0123456789abcdef0"
    token = "tok-123"

    def do_PUT(self):
        if self.path != "/latest/api/token" or not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            return self._send(400, "")
        self._send(200, self.token)

    def do_GET(self):
        if self.headers.get("X-aws-ec2-metadata-token") != self.token:
            return self._send(401, "")
        if self.path != "/latest/meta-data/instance-id":
            return self._send(404, "")
        self._send(200, self.instance_id)

    def _send(self, status, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def imds():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Imds)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_configured_id_wins_without_asking_anyone():
    assert instance_identity(" i-0abc ", request=never, signs=lambda: NITRO) == "i-0abc"


def test_off_ec2_nobody_is_asked_and_the_refusal_says_what_to_set():
    with pytest.raises(IdentityError) as refused:
        instance_identity("", "", request=never, signs=lambda: LAPTOP)

    message = str(refused.value)
    assert "not an EC2 instance" in message and "set GPUORCH_INSTANCE_ID" in message and "\n" not in message


def test_a_configured_metadata_service_is_asked_anywhere(imds):
    assert instance_identity("", imds, signs=lambda: LAPTOP) == "i-0123456789abcdef0"


def test_on_ec2_its_own_metadata_service_is_asked_briefly_with_an_imdsv2_token():
    calls = []

    def request(method, url, headers, timeout):
        calls.append((method, url, dict(headers), timeout))
        return "tok" if method == "PUT" else "i-0123456789abcdef0\n"

    assert instance_identity("", "", request=request, signs=lambda: NITRO, timeout=0.5) == "i-0123456789abcdef0"
    assert calls == [
        ("PUT", "http://169.254.169.254/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "60"}, 0.5),
        ("GET", "http://169.254.169.254/latest/meta-data/instance-id", {"X-aws-ec2-metadata-token": "tok"}, 0.5),
    ]


def test_the_token_is_required_by_the_stand_in(imds):
    with pytest.raises(OSError):
        http_request("GET", f"{imds}/latest/meta-data/instance-id", {}, 1.0)
    assert InstanceMetadata(imds).get("/meta-data/instance-id") == "i-0123456789abcdef0"


def test_a_metadata_service_that_does_not_answer_is_a_clear_error():
    with pytest.raises(IdentityError, match="did not answer.*set GPUORCH_INSTANCE_ID"):
        instance_identity("", f"http://127.0.0.1:{free_port()}", signs=lambda: LAPTOP, timeout=0.5)


def test_an_answer_that_is_not_an_instance_id_is_refused():
    with pytest.raises(IdentityError, match="not an instance id"):
        instance_identity("", "", signs=lambda: NITRO,
                          request=lambda method, *_: "tok" if method == "PUT" else "<html>login</html>")
