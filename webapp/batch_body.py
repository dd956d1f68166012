"""A batch submission's body: `{"items": [...]}` as JSON, or multipart/form-data with that object in the ``params``
part and each item's images as file parts named ``items.<index>.<image parameter>``, in order for a list."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from flask import request

from gpuorch.errors import ParamsInvalid
from gpuorch.jobs.batches import ITEMS, WORKFLOW
from gpuorch.jobs.submission import InlineImage
from gpuorch.workflows import WorkflowSet
from webapp.errors import ApiError
from webapp.request_body import FORM_MEDIA_TYPE, PARAMS_PART, image_fields, parse_json_object

_ITEM_PART = re.compile(r"items\.(0|[1-9][0-9]*)\.([a-z][a-z0-9_]*)")


def read_batch(workflows: WorkflowSet) -> Any:
    """The current request's batch items (a list, as sent, for the batch submitter to check each)."""
    if request.mimetype == FORM_MEDIA_TYPE:
        return _read_form(workflows)
    if not request.is_json:
        raise ApiError(400, "invalid_json",
                       f"The request body must be JSON (Content-Type: application/json) or {FORM_MEDIA_TYPE}.")
    return _items_of(parse_json_object(request.get_data()))


def _items_of(body: Mapping[str, Any]) -> Any:
    unknown = sorted(set(body) - {ITEMS})
    if unknown:
        raise ParamsInvalid({name: ["Unknown field."] for name in unknown})
    if ITEMS not in body:
        raise ParamsInvalid({ITEMS: ["Missing data for required field."]})
    return body[ITEMS]


def _read_form(workflows: WorkflowSet) -> Any:
    texts = [
        *(field.encode("latin-1") for field in request.form.getlist(PARAMS_PART)),
        *(part.read() for part in request.files.getlist(PARAMS_PART)),
    ]
    if len(texts) != 1:
        raise ApiError(400, "invalid_form", f"Send the batch as JSON in one {PARAMS_PART} part, not {len(texts)}.")
    items = _items_of(parse_json_object(texts[0], f"The {PARAMS_PART} part"))
    files = {name: [f.read() for f in request.files.getlist(name)] for name in request.files if name != PARAMS_PART}
    others = [name for name in request.form if name != PARAMS_PART]
    return place_files(items, files, workflows, others)


def place_files(items: Any, files: Mapping[str, Sequence[bytes]], workflows: WorkflowSet,
                other_fields: Sequence[str] = ()) -> Any:
    """The items with each file part ``items.<index>.<name>`` as the value of that item's image parameter (a list
    of images for a parameter that takes one); ParamsInvalid naming each part that fits no item's image parameter."""
    errors: dict[str, list[str]] = {name: [f"only the {PARAMS_PART} part and items.<index>.<image> file parts are "
                                           "read"] for name in other_fields}
    placed = [dict(item) if isinstance(item, Mapping) else item for item in items] if isinstance(items, list) else items
    for name, parts in files.items():
        match = _ITEM_PART.fullmatch(name)
        index = int(match.group(1)) if match else -1
        item = placed[index] if isinstance(placed, list) and 0 <= index < len(placed) else None
        workflow = item.get(WORKFLOW) if isinstance(item, dict) else None
        if match is None or item is None or workflow not in workflows:
            errors[name] = ["a file part is named items.<index>.<image parameter> of an item naming its workflow"]
            continue
        param = match.group(2)
        images = image_fields(workflows[workflow])
        if param not in images:
            allowed = ", ".join(images) or "none: its workflow takes no images"
            errors[name] = [f"{workflow} has no image parameter {param!r} ({allowed})"]
        elif param in item:
            errors[name] = [f"given both in {PARAMS_PART} and as file parts; send it one way"]
        elif images[param]:
            item[param] = [InlineImage(data) for data in parts]
        elif len(parts) != 1:
            errors[name] = [f"takes one image, not {len(parts)} file parts"]
        else:
            item[param] = InlineImage(parts[0])
    if errors:
        raise ParamsInvalid(errors)
    return placed
