"""Service info, the OpenAPI document, and the one error shape for routes, methods and crashes."""

from __future__ import annotations

from gpuorch.celery.app import create_celery_app
from tests.webapp.conftest import keyed
from webapp import create_app
from webapp.request_body import image_fields
from webapp.request_schemas import form_body_schema, form_encoding, request_json_schema


def test_service_info_lists_the_workflows(client, operator, provisioned):
    answer = client.get("/")

    assert answer.status_code == 200
    assert answer.json["name"] == "gpuorch"
    assert answer.json["version"]
    assert {w["name"]: w["submit_url"] for w in answer.json["workflows"]} == {
        "camera-angle": "/api/v1/camera-angle/jobs",
        "qwen-image-edit": "/api/v1/qwen-image-edit/jobs",
    }
    assert all(w["description"] for w in answer.json["workflows"])
    for link in answer.json["links"].values():
        assert operator.get(link).status_code == 200  # the costs are an operator's


def test_openapi_documents_requests_with_the_workflows_own_json_schemas(client, app):
    document = client.get("/openapi.json").json
    workflows = app.extensions["gpuorch"].services.workflows

    assert document["openapi"].startswith("3.1")
    for workflow, component in (("camera-angle", "CameraAngle"), ("qwen-image-edit", "QwenImageEdit")):
        operation = document["paths"][f"/api/v1/{workflow}/jobs"]["post"]
        content = operation["requestBody"]["content"]
        assert content["application/json"]["schema"] == {"$ref": f"#/components/schemas/{component}Request"}
        json_body = request_json_schema(workflows.get(workflow))
        assert document["components"]["schemas"][f"{component}Request"] == json_body
        # The form: the same parameters as JSON in one part, the images as file parts named after them.
        assert content["multipart/form-data"]["schema"] == {"$ref": f"#/components/schemas/{component}Form"}
        images = image_fields(workflows.get(workflow))
        assert document["components"]["schemas"][f"{component}Form"] == form_body_schema(
            json_body, images, f"{component}Form"
        )
        assert content["multipart/form-data"]["encoding"] == form_encoding(images)
        assert "Location" in operation["responses"]["202"]["headers"]
        assert {"400", "413", "422", "503"} <= set(operation["responses"])
    generic = document["paths"]["/api/v1/workflows/{name}/jobs"]["post"]["requestBody"]["content"]
    assert set(generic) == {"application/json", "multipart/form-data"}
    assert set(document["paths"]) >= {"/", "/health", "/api/v1/jobs", "/api/v1/jobs/{job_id}"}
    parameters = {p["name"] for p in document["paths"]["/api/v1/jobs"]["get"]["parameters"]}
    assert parameters == {"status", "limit", "cursor"}


def test_openapi_documents_output_download_urls(client):
    document = client.get("/openapi.json").json

    output = document["components"]["schemas"]["Output"]
    assert {"url", "url_expires_at"} <= set(output["required"])
    assert output["properties"]["url_expires_at"]["format"] == "date-time"


def test_openapi_documents_the_error_shape_for_every_error_response(client):
    document = client.get("/openapi.json").json

    error = document["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    detail = document["components"]["schemas"]["ErrorDetail"]
    assert set(detail["properties"]) == {"code", "message", "fields"}
    for name in (
        "BAD_REQUEST", "NOT_FOUND", "REQUEST_ENTITY_TOO_LARGE", "UNPROCESSABLE_ENTITY", "SERVICE_UNAVAILABLE",
        "DEFAULT_ERROR",
    ):
        schema = document["components"]["responses"][name]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Error"}


def test_swagger_ui_page(client):
    answer = client.get("/docs")

    assert answer.status_code == 200
    assert "/openapi.json" in answer.get_data(as_text=True)


def test_unknown_route_is_404_in_the_error_shape(client):
    answer = client.get("/api/v1/nowhere")

    assert answer.status_code == 404
    assert answer.json == {"error": {"code": "not_found", "message": answer.json["error"]["message"]}}


def test_wrong_method_is_405_naming_the_allowed_ones(client):
    answer = client.get("/api/v1/camera-angle/jobs")

    assert answer.status_code == 405
    assert answer.json["error"]["code"] == "method_not_allowed"
    assert "POST" in answer.headers["Allow"]


def test_an_unexpected_failure_is_500_without_its_details(settings, operator_key):
    app = create_app(settings, celery_app=create_celery_app(settings))

    def crash():
        raise RuntimeError("secret internals")

    app.add_url_rule("/crash", view_func=crash)

    # A route outside any declared blueprint needs an operator key (webapp/auth.py).
    answer = keyed(app.test_client(), operator_key).get("/crash")

    assert answer.status_code == 500
    assert answer.json["error"]["code"] == "internal_server_error"
    assert "secret" not in answer.get_data(as_text=True)
