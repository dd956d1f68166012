"""JSON Schemas of a submission's body as documented: the workflow's request and the job's options, images also inline
or as file parts."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from gpuorch.jobs.options import options_json_schema
from gpuorch.webhooks.events import DEFAULT_EVENTS, EVENTS, EVENTS_FIELD, WEBHOOK_FIELD
from gpuorch.workflows import Workflow
from webapp.request_body import PARAMS_PART, image_fields

ACCEPTED_IMAGE_TYPES = "image/png, image/jpeg, image/webp"

DATA_URI_JSON_SCHEMA = {
    "type": "string",
    "pattern": "^data:image/[A-Za-z0-9.+-]+(;[^,;]*)*;base64,",
    "description": "The image itself (PNG, JPEG or WEBP), base64 in a data: URI: data:image/png;base64,<data>.",
}

_INLINE_NOTE = " Or the image itself as a data:image/<type>;base64,<data> URI, stored before the job is queued."
_INLINE_LIST_NOTE = (
    " Or any of them as the image itself, a data:image/<type>;base64,<data> URI, stored before the job is queued."
)

_FILE_JSON_SCHEMA = {"type": "string", "format": "binary", "contentMediaType": "application/octet-stream"}

# The request's own fields beside the workflow's parameters: where its events are POSTed.
WEBHOOK_PROPERTIES = {
    WEBHOOK_FIELD: {
        "type": "string", "format": "uri", "maxLength": 2048,
        "description": "A public https:// URL the job's events are POSTed to, signed the Standard Webhooks way "
                       "(webhook-id, webhook-timestamp, webhook-signature) with the API key's webhook secret; tried "
                       "again for hours until it answers 2xx. Default: the key's default webhook, if any.",
    },
    EVENTS_FIELD: {
        "type": "array", "minItems": 1, "uniqueItems": True,
        "items": {"type": "string", "enum": list(EVENTS)},
        "description": f"The events the webhook hears. Default: {', '.join(DEFAULT_EVENTS)} (progress only when "
                       "named).",
    },
}


def json_body_schema(schema: Mapping[str, Any], images: Mapping[str, bool]) -> dict[str, Any]:
    """The workflow's request schema with each image (``images``: name -> takes a list) also accepted as a
    data: URI, and the job's options beside its parameters."""
    body = copy.deepcopy(dict(schema))
    properties = body.setdefault("properties", {})
    properties.update(options_json_schema())
    properties.update(copy.deepcopy(WEBHOOK_PROPERTIES))
    for name, is_list in images.items():
        if name not in properties:
            continue
        prop = properties[name]
        if is_list:
            prop["items"] = {"anyOf": [prop["items"], DATA_URI_JSON_SCHEMA]}
            prop["description"] = prop.get("description", "") + _INLINE_LIST_NOTE
        else:
            uri = {key: value for key, value in prop.items() if key != "description"}
            properties[name] = {
                "description": prop.get("description", "") + _INLINE_NOTE,
                "anyOf": [uri, DATA_URI_JSON_SCHEMA],
            }
    return body


def form_body_schema(json_body: Mapping[str, Any], images: Mapping[str, bool], title: str) -> dict[str, Any]:
    """The multipart/form-data body: ``params`` holding the JSON body (less the images sent as files), and a
    file part per image, named after its parameter."""
    params = {key: copy.deepcopy(value) for key, value in json_body.items() if key not in {"$schema", "title"}}
    params["description"] = (
        "The parameters as a JSON object, as the application/json body would send them; an image parameter "
        "sent as file parts is left out of it."
    )
    params["required"] = [name for name in params.get("required", []) if name not in images]
    properties: dict[str, Any] = {PARAMS_PART: params}
    for name, is_list in images.items():
        source = json_body.get("properties", {}).get(name, {})
        if is_list:
            part: dict[str, Any] = {
                "type": "array",
                "items": dict(_FILE_JSON_SCHEMA),
                "description": f"One file part named {name} per image, in order.",
            }
            part.update({key: source[key] for key in ("minItems", "maxItems") if key in source})
        else:
            part = {**_FILE_JSON_SCHEMA, "description": f"The image, as one file part named {name}."}
        properties[name] = part
    return {
        "title": title,
        "description": (
            f"The request as multipart/form-data: the parameters as JSON in the {PARAMS_PART} part, and each "
            f"image parameter's images (PNG, JPEG or WEBP) as file parts named after it, given either as files "
            f"or in {PARAMS_PART}, not both."
        ),
        "type": "object",
        "properties": properties,
        "required": [PARAMS_PART],
        "additionalProperties": False,
    }


def form_encoding(images: Mapping[str, bool]) -> dict[str, Any]:
    """The OpenAPI encoding of the form's parts: JSON parameters, image files."""
    return {PARAMS_PART: {"contentType": "application/json"}} | {
        name: {"contentType": ACCEPTED_IMAGE_TYPES} for name in images
    }


def batch_schemas(workflows: Iterable[Workflow], request_name: str, form_name: str, max_items: int
                  ) -> dict[str, dict[str, Any]]:
    """The batch body's schemas: one item schema per workflow (its JSON request naming it in `workflow`), the JSON
    body of up to `max_items` of them, and the multipart body carrying it with its images as file parts."""
    schemas: dict[str, dict[str, Any]] = {}
    for workflow in workflows:
        item = request_json_schema(workflow)
        item.pop("$schema", None)
        item["title"] = item["title"].removesuffix("Request") + "BatchItem"
        item["properties"] = {"workflow": {"const": workflow.name, "description": "The item's workflow."},
                              **item["properties"]}
        item["required"] = ["workflow", *item.get("required", [])]
        schemas[item["title"]] = item
    items = [{"$ref": f"#/components/schemas/{name}"} for name in schemas]
    schemas[request_name] = {
        "title": request_name,
        "type": "object",
        "properties": {"items": {"type": "array", "minItems": 1, "maxItems": max_items, "items": {"anyOf": items},
                                 "description": "The jobs, each an ordinary job request naming its workflow."}},
        "required": ["items"],
        "additionalProperties": False,
    }
    schemas[form_name] = {
        "title": form_name,
        "description": f"The batch as multipart/form-data: its JSON in the {PARAMS_PART} part, and each item's images "
                       "as file parts named items.<index>.<image parameter> (one per image, in order for a list), "
                       f"given either as files or in {PARAMS_PART}, not both.",
        "type": "object",
        "properties": {PARAMS_PART: {"$ref": f"#/components/schemas/{request_name}"}},
        "required": [PARAMS_PART],
        "additionalProperties": {"anyOf": [dict(_FILE_JSON_SCHEMA),
                                           {"type": "array", "items": dict(_FILE_JSON_SCHEMA)}]},
    }
    return schemas


def request_json_schema(workflow: Workflow) -> dict[str, Any]:
    """The JSON Schema of the application/json body that submits ``workflow``."""
    return json_body_schema(workflow.json_schema(), image_fields(workflow))
