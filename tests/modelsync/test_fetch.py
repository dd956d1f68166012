"""Fetching one file in ranged parts over real HTTP servers on loopback: ranges, no ranges, failing parts."""

from __future__ import annotations

import hashlib
import io
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests
from flask import Flask, abort, request, send_file
from werkzeug.serving import make_server

from gpuorch.modelsync.fetch import HttpSource, S3Source, SourceUnavailable, fetch, parts

DATA = os.urandom(300_001)


@pytest.mark.parametrize("size,part,expected", [
    (0, 10, []),
    (10, 10, [(0, 10)]),
    (25, 10, [(0, 10), (10, 20), (20, 25)]),
    (9, 10, [(0, 9)]),
])
def test_parts_cover_the_object_once(size, part, expected):
    assert parts(size, part) == expected


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/model.safetensors"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def model_server(*, ranges: bool = True, fail_first: int = 0, cut_short: int = 0) -> tuple[Flask, list]:
    """A server of DATA: with or without byte ranges; its first `fail_first` GETs answer 503, and the next
    `cut_short` ranged GETs end after half their bytes."""
    app = Flask(__name__)
    seen: list[str | None] = []

    @app.route("/model.safetensors", methods=["GET", "HEAD"])
    def model():
        if request.method == "GET":
            seen.append(request.headers.get("Range"))
            gets = len(seen)
            if gets <= fail_first:
                abort(503)
            if ranges and cut_short and gets <= fail_first + cut_short and request.range:
                start, stop = request.range.ranges[0]
                return DATA[start:start + (stop - start) // 2], 206, {
                    "Content-Range": f"bytes {start}-{stop - 1}/{len(DATA)}"}
        if not ranges:
            return send_file(io.BytesIO(DATA), mimetype="application/octet-stream", conditional=False)
        return send_file(io.BytesIO(DATA), mimetype="application/octet-stream", conditional=True)

    return app, seen


def test_a_server_with_ranges_is_read_in_parallel_parts_and_hashed(tmp_path):
    app, seen = model_server()
    with serving(app) as url:
        source = HttpSource(requests.Session(), url)
        assert source.ranged() and source.size() == len(DATA)

        sha256 = fetch(source, tmp_path / "model", len(DATA), concurrency=4, part_bytes=64 * 1024)

    assert sha256 == hashlib.sha256(DATA).hexdigest()
    assert (tmp_path / "model").read_bytes() == DATA
    assert sorted(seen) == sorted(f"bytes={start}-{end - 1}" for start, end in parts(len(DATA), 64 * 1024))


def test_a_server_without_ranges_is_read_in_one_get(tmp_path):
    app, seen = model_server(ranges=False)
    with serving(app) as url:
        source = HttpSource(requests.Session(), url)
        assert not source.ranged()

        sha256 = fetch(source, tmp_path / "model", len(DATA), concurrency=4, part_bytes=64 * 1024)

    assert sha256 == hashlib.sha256(DATA).hexdigest() and seen == [None]


def test_parts_refused_for_now_or_cut_short_are_fetched_again(tmp_path):
    app, seen = model_server(fail_first=2, cut_short=2)
    with serving(app) as url:
        sha256 = fetch(HttpSource(requests.Session(), url), tmp_path / "model", len(DATA), concurrency=2,
                       part_bytes=100_000, retry_wait_s=0.01)

    assert sha256 == hashlib.sha256(DATA).hexdigest()
    assert len(seen) == 4 + 4  # four parts, and four answers that failed them once


def test_a_part_that_keeps_failing_stops_the_fetch_naming_the_source(tmp_path):
    app, _seen = model_server(fail_first=10**6)
    with serving(app) as url:
        with pytest.raises(SourceUnavailable, match="answered 503"):
            fetch(HttpSource(requests.Session(), url), tmp_path / "model", len(DATA), concurrency=2,
                  part_bytes=100_000, retry_wait_s=0.01)


def test_a_missing_url_is_a_source_error():
    app, _seen = model_server()
    with serving(app) as url:
        with pytest.raises(SourceUnavailable, match="404"):
            HttpSource(requests.Session(), url.replace("model", "other")).size()


def test_an_s3_object_is_read_in_ranges(tmp_path, s3, model_bucket):
    s3.put_object(Bucket=model_bucket, Key="m/model.safetensors", Body=DATA)
    source = S3Source(s3, model_bucket, "m/model.safetensors")

    sha256 = fetch(source, tmp_path / "model", source.size(), concurrency=3, part_bytes=50_000)

    assert sha256 == hashlib.sha256(DATA).hexdigest() and (tmp_path / "model").read_bytes() == DATA
