"""A submission's body: a JSON object, or multipart/form-data with images as file parts; and its size limit.

The multipart convention: the parameters go, as the JSON object the application/json body would be, in
one part named ``params``; each image parameter's images go as file parts named after it, one part for
``image``, one or more in order for a list such as ``images``. An image parameter is given either in
``params`` (as a URI or a data: URI) or as file parts, never both.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any

from flask import Request, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import FormDataParser, MultiPartParser
from werkzeug.utils import cached_property
from werkzeug.wsgi import LimitedStream

from gpuorch.errors import ParamsInvalid
from gpuorch.jobs.submission import InlineImage
from gpuorch.workflows import Workflow
from webapp.errors import ApiError

PARAMS_PART = "params"
FORM_MEDIA_TYPE = "multipart/form-data"

# Room in a body for the non-image parameters, and per image for a data: URI's prefix or a part's headers.
PARAMS_ALLOWANCE = 256 * 1024
PER_IMAGE_OVERHEAD = 1024

# How deep a body's arrays and objects may nest, the body itself being level 1. The job record keeps the parameters
# as a document in its "params" attribute, and DynamoDB refuses a document nested deeper than 32 levels (the write
# fails, and the client was told to try again: a 503); half of that leaves the record room, and no workflow
# parameter nests more than two levels (a list of image URIs). Checked before parsing, so json's recursive parser
# never meets a body nested a thousand levels deep (a RecursionError, answered 500).
MAX_JSON_DEPTH = 16


def image_fields(workflow: Workflow) -> dict[str, bool]:
    """Each image parameter of the workflow, and whether it takes a list of images."""
    return {param.name: param.kind == "image_list" for param in workflow.image_params}


def image_capacity(workflow: Workflow) -> int:
    """The most images one request of the workflow can carry."""
    return sum(getattr(param, "max_items", 1) for param in workflow.image_params)


def base64_size(size: int) -> int:
    """Length of ``size`` bytes in padded base64."""
    return 4 * ((size + 2) // 3)


def request_body_limit(max_input_bytes: int, max_images: int) -> int:
    """The largest body that holds ``max_images`` images of ``max_input_bytes`` each, sent as base64 data: URIs
    (the larger of the two ways to send them), with their parameters."""
    return max_images * (base64_size(max_input_bytes) + PER_IMAGE_OVERHEAD) + PARAMS_ALLOWANCE


def parse_json_object(data: bytes, where: str = "The request body") -> dict[str, Any]:
    """``data`` as a JSON object; a 400 ApiError when it is not UTF-8 JSON, nests too deep or is not an object."""
    try:
        # Strictly: json.loads(bytes) decodes with 'surrogatepass', so a UTF-8-encoded surrogate (ED A0 80) became
        # a lone surrogate that the job table refused (a 503). A leading byte-order mark is skipped, as json did.
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ApiError(400, "invalid_json", f"{where} is not UTF-8: {exc.reason} at byte {exc.start}.") from None
    if nests_deeper_than(data, MAX_JSON_DEPTH):
        raise ApiError(400, "invalid_json", f"{where} nests arrays and objects deeper than {MAX_JSON_DEPTH} levels.")
    try:
        # NaN and Infinity are not JSON.
        value = json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:
        raise ApiError(400, "invalid_json", f"{where} is not valid JSON: {exc}.") from None
    # json accepts an escaped lone surrogate ("\ud800"), which no store can encode: the job table's write then
    # failed and the client was told to try again (503). Only escapes can make one, so most bodies skip the walk.
    if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(value):
        raise ApiError(400, "invalid_json", f"{where} holds a lone surrogate escape (\\ud800-\\udfff): not text.")
    if not isinstance(value, dict):
        raise ApiError(400, "invalid_body", f"{where} must be a JSON object, not {json_type(value)}.")
    return value


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")
_LEVELS = bytes.maketrans(b"[{]}", b"(())")
_NOT_STRUCTURE = bytes(set(range(256)) - set(b'"[]{}'))


def nests_deeper_than(data: bytes, limit: int) -> bool:
    """Whether the UTF-8 JSON text ``data`` nests arrays and objects more than ``limit`` levels deep.

    Without recursion, and in a few passes of bytes methods rather than a Python loop per bracket, since a body
    may hold millions of them. Exact for JSON; for text that is not, it may overcount after the point where a
    parser stops, never before, so a parser never goes deeper than this allowed.
    """
    if data.count(b"[") + data.count(b"{") <= limit:
        return False  # every body a workflow takes
    # Escapes go first (a run of backslashes pairs from its start, as JSON reads it; then escaped quotes), so that
    # the quotes left delimit strings; the brackets outside strings are the levels: ( opens one, ) closes one.
    structure = data.replace(b"\\\\", b"").replace(b'\\"', b"").translate(_LEVELS, _NOT_STRUCTURE)
    levels = b"".join(structure.split(b'"')[::2])
    # Levels left open are closed at the end, so that every deepest level is an innermost () pair: each round of
    # deleting those pairs lowers the deepest level by one, and a pair left after ``limit`` rounds is one too deep.
    levels += b")" * levels.count(b"(")
    for _ in range(limit):
        if b"()" not in levels:
            return False
        levels = levels.replace(b"()", b"")
    return b"()" in levels


def _has_lone_surrogate(value: Any) -> bool:
    # A walk with a list of what is left to see rather than recursion, whatever depth the value has.
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value")


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array"


def form_params(
    params: Mapping[str, Any],
    files: Mapping[str, Sequence[bytes]],
    images: Mapping[str, bool],
    other_fields: Iterable[str] = (),
) -> dict[str, Any]:
    """The parameters of a multipart submission: the ``params`` object with each file part placed as the
    value of the image parameter it is named after (``images``: image name -> takes a list).

    Raises ParamsInvalid naming each part that breaks the convention.
    """
    errors: dict[str, list[str]] = {}
    for name in other_fields:
        errors[name] = [f"only the {PARAMS_PART} part and image file parts are read; put parameters in {PARAMS_PART}"]
    merged = dict(params)
    for name, parts in files.items():
        if name not in images:
            allowed = ", ".join(images) if images else "none: this workflow takes no images"
            errors[name] = [f"a file part must be named after an image parameter ({allowed})"]
        elif name in params:
            errors[name] = [f"given both in {PARAMS_PART} and as file parts; send it one way"]
        elif images[name]:
            merged[name] = [InlineImage(data) for data in parts]
        elif len(parts) != 1:
            errors[name] = [f"takes one image, not {len(parts)} file parts"]
        else:
            merged[name] = InlineImage(parts[0])
    if errors:
        raise ParamsInvalid(errors)
    return merged


def read_params(workflow: Workflow) -> dict[str, Any]:
    """The current request's parameters for ``workflow``, from a JSON or a multipart/form-data body."""
    if request.mimetype == FORM_MEDIA_TYPE:
        return _read_form(workflow)
    if not request.is_json:
        raise ApiError(
            400, "invalid_json",
            f"The request body must be JSON (Content-Type: application/json) or {FORM_MEDIA_TYPE}.",
        )
    return parse_json_object(request.get_data())


def _read_form(workflow: Workflow) -> dict[str, Any]:
    # A params part sent as a file (curl -F params=@request.json) reads the same as a plain field: both as the
    # bytes that came (ApiRequest keeps a field's bytes as latin-1 text), so that both are decoded strictly.
    texts = [
        *(field.encode("latin-1") for field in request.form.getlist(PARAMS_PART)),
        *(part.read() for part in request.files.getlist(PARAMS_PART)),
    ]
    if len(texts) > 1:
        raise ApiError(400, "invalid_form", f"Send the parameters in one {PARAMS_PART} part, not {len(texts)}.")
    params = parse_json_object(texts[0], f"The {PARAMS_PART} part") if texts else {}
    files = {name: [f.read() for f in request.files.getlist(name)] for name in request.files if name != PARAMS_PART}
    others = [name for name in request.form if name != PARAMS_PART]
    return form_params(params, files, image_fields(workflow), others)


class _CappedBody(LimitedStream):
    """The server's body stream, read up to a limit; a body over it is refused (413).

    werkzeug's LimitedStream stops at the limit and returns what it has read as if it were the whole body: a
    chunked JSON body over the limit was cut, then refused as malformed JSON (400), or taken if the part left
    happened to parse. One byte more from the server's stream tells a body over the limit from one that ends
    exactly at it.
    """

    def __init__(self, stream: IO[bytes], limit: int):
        super().__init__(stream, limit, is_max=True)
        self._server_stream = stream

    def on_exhausted(self) -> None:
        if self._server_stream.read(1):
            raise RequestEntityTooLarge()

    def readall(self) -> bytes:
        data = super().readall()
        if self.is_exhausted:
            self.on_exhausted()
        return data


class _ByteKeepingMultiPartParser(MultiPartParser):
    def get_part_charset(self, headers: Any) -> str:
        return "latin-1"  # one character per byte: nothing is replaced or lost


class _ByteKeepingFormParser(FormDataParser):
    """werkzeug's form parser, decoding a multipart text field as latin-1 rather than as UTF-8 with malformed bytes
    replaced, so that read_params can refuse a params field for them as it does the same text in a file part."""

    def _parse_multipart(self, stream, mimetype, content_length, options):
        # werkzeug builds its MultiPartParser here, with no other way to choose a field's charset.
        boundary = options.get("boundary", "").encode("ascii")
        if not boundary:
            raise ValueError("Missing boundary")
        parser = _ByteKeepingMultiPartParser(
            stream_factory=self.stream_factory, max_form_memory_size=self.max_form_memory_size,
            max_form_parts=self.max_form_parts, cls=self.cls,
        )
        form, files = parser.parse(stream, boundary, content_length)
        return stream, form, files


class ApiRequest(Request):
    """Flask's request, reading a body as the API needs: a streamed body over the size limit is refused rather
    than cut, and a form's text fields keep their bytes."""

    form_data_parser_class = _ByteKeepingFormParser

    @cached_property
    def stream(self) -> IO[bytes]:
        stream = super().stream  # werkzeug's checks first: a Content-Length over the limit is a 413 at once
        if self.max_content_length is not None and "wsgi.input_terminated" in self.environ:
            # Where werkzeug reads the server's stream up to max_content_length: gunicorn ends a chunked body
            # itself and says so (wsgi.input_terminated), so a chunked body comes this way.
            return _CappedBody(self.environ["wsgi.input"], self.max_content_length)
        return stream
