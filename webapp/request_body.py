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
from typing import Any

from flask import request

from gpuorch.errors import ParamsInvalid
from gpuorch.jobs.submission import InlineImage
from gpuorch.workflows import Workflow
from webapp.errors import ApiError

PARAMS_PART = "params"
FORM_MEDIA_TYPE = "multipart/form-data"

# Room in a body for the non-image parameters, and per image for a data: URI's prefix or a part's headers.
PARAMS_ALLOWANCE = 256 * 1024
PER_IMAGE_OVERHEAD = 1024


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


def parse_json_object(data: bytes | str, where: str = "The request body") -> dict[str, Any]:
    """``data`` as a JSON object; a 400 ApiError when it is not JSON or not an object."""
    try:
        # Bytes, so malformed UTF-8 is refused rather than replaced; NaN and Infinity are not JSON.
        value = json.loads(data, parse_constant=_refuse_constant)
    except ValueError as exc:
        raise ApiError(400, "invalid_json", f"{where} is not valid JSON: {exc}.") from None
    # json accepts an escaped lone surrogate ("\ud800"), which no store can encode: the job table's write then
    # failed and the client was told to try again (503). Only escapes can make one, so most bodies skip the walk.
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if _SURROGATE_ESCAPE.search(raw) and _has_lone_surrogate(value):
        raise ApiError(400, "invalid_json", f"{where} holds a lone surrogate escape (\\ud800-\\udfff): not text.")
    if not isinstance(value, dict):
        raise ApiError(400, "invalid_body", f"{where} must be a JSON object, not {json_type(value)}.")
    return value


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(item) for item in value)
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
    # A params part sent as a file (curl -F params=@request.json) reads the same as a plain field.
    texts: list[bytes | str] = [
        *request.form.getlist(PARAMS_PART), *(part.read() for part in request.files.getlist(PARAMS_PART))
    ]
    if len(texts) > 1:
        raise ApiError(400, "invalid_form", f"Send the parameters in one {PARAMS_PART} part, not {len(texts)}.")
    params = parse_json_object(texts[0], f"The {PARAMS_PART} part") if texts else {}
    files = {name: [f.read() for f in request.files.getlist(name)] for name in request.files if name != PARAMS_PART}
    others = [name for name in request.form if name != PARAMS_PART]
    return form_params(params, files, image_fields(workflow), others)
