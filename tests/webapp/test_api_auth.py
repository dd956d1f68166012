"""API keys on every route: 401 without a live key, 403 for a user key on an operator route, jobs scoped to
their owner (another owner's job reads as missing), and the key cache's bounded trust in a revoked key."""

from __future__ import annotations

import pytest

from gpuorch.access.keys import KeyStore
from tests.conftest import make_key
from tests.webapp.conftest import keyed
from webapp import create_app
from webapp.auth import OPEN_ENDPOINTS, OPERATOR, USER, bearer_token, needed_role


def all_routes(app) -> list[tuple[str, str, str]]:
    """(endpoint, method, path with placeholder values) of every route of the app, from its url_map."""
    routes = []
    for rule in app.url_map.iter_rules():
        path = rule.rule
        for argument in rule.arguments:
            path = path.replace(f"<string:{argument}>", "x").replace(f"<{argument}>", "x")
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            routes.append((rule.endpoint, method, path))
    return routes


def test_the_allow_list_names_only_service_info_health_and_the_document(app):
    paths = {rule.rule for rule in app.url_map.iter_rules() if rule.endpoint in OPEN_ENDPOINTS}
    assert paths == {"/", "/health", "/openapi.json", "/docs"}


def test_every_route_but_the_open_ones_answers_401_without_a_key(app, provisioned):
    # Parametrized over the url_map itself: a route added later without a decision fails here.
    client = app.test_client()
    protected = [(e, m, p) for e, m, p in all_routes(app) if e not in OPEN_ENDPOINTS]
    assert len(protected) >= 12
    for endpoint, method, path in protected:
        for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"},
                        {"Authorization": "Bearer gpo_000000000000_nobody"}, {"Authorization": "Bearer not-a-key"}):
            answer = client.open(path, method=method, headers=headers, json={})
            assert answer.status_code == 401, (endpoint, method, path, headers, answer.json)
            assert answer.headers["WWW-Authenticate"].startswith("Bearer"), endpoint
            assert answer.json["error"]["code"] in {"unauthorized", "invalid_key"}, endpoint


def test_the_open_routes_answer_without_a_key(app, provisioned):
    client = app.test_client()
    for path in ("/", "/health", "/openapi.json"):
        assert client.get(path).status_code == 200, path
    assert client.get("/docs").status_code == 200


def test_an_unknown_path_needs_a_key_too(app, client, provisioned):
    assert app.test_client().get("/api/v1/nothing-here").status_code == 401
    assert client.get("/api/v1/nothing-here").status_code == 404


def test_a_revoked_key_is_refused_with_401(app, provisioned, settings):
    token = make_key(provisioned, "bob")
    key_id = token.split("_")[1]
    # A fresh app: its cache has never seen the key (the cache's bound is tested below).
    KeyStore(provisioned.aws.dynamodb, settings.key_table).revoke(key_id)
    answer = keyed(app.test_client(), token).get("/api/v1/jobs")

    assert answer.status_code == 401
    assert answer.json["error"]["code"] == "invalid_key"
    assert "invalid_token" in answer.headers["WWW-Authenticate"]


def test_a_wrong_secret_for_a_real_key_id_is_refused(app, api_key):
    prefix, key_id, _secret = api_key.split("_", 2)
    forged = f"{prefix}_{key_id}_{'A' * 43}"
    assert keyed(app.test_client(), forged).get("/api/v1/jobs").status_code == 401


class Ticker:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_revocation_bites_once_the_cache_entry_is_older_than_its_bound(settings, provisioned, celery_app):
    monotonic = Ticker()
    app = create_app(settings, celery_app=celery_app, monotonic=monotonic)
    token = make_key(provisioned, "bob")
    client = keyed(app.test_client(), token)
    assert client.get("/api/v1/jobs").status_code == 200

    KeyStore(provisioned.aws.dynamodb, settings.key_table).revoke(token.split("_")[1])
    monotonic.now += settings.key_cache_seconds - 1
    assert client.get("/api/v1/jobs").status_code == 200  # still trusted from the cache
    monotonic.now += 1
    assert client.get("/api/v1/jobs").status_code == 401


OPERATOR_ROUTES = [("GET", "/api/v1/costs"), ("GET", "/api/v1/gpu"), ("POST", "/api/v1/gpu/i-0123456789abcdef0/start"),
                   ("POST", "/api/v1/gpu/i-0123456789abcdef0/stop")]


@pytest.mark.parametrize(("method", "path"), OPERATOR_ROUTES)
def test_an_operator_route_is_403_for_a_user_key(client, method, path):
    answer = client.open(path, method=method)

    assert answer.status_code == 403
    assert answer.json["error"]["code"] == "forbidden"
    assert "operator" in answer.json["error"]["message"]


def test_another_owners_job_is_404_on_get_and_cancel_and_stays_as_it_was(client, provisioned):
    provisioned.jobs.create("bobs", "camera-angle", {}, source="api", owner="bob")
    provisioned.jobs.create("nobodys", "camera-angle", {}, source="python")

    for job_id in ("bobs", "nobodys"):
        missing = client.get("/api/v1/jobs/no-such-job")
        answer = client.get(f"/api/v1/jobs/{job_id}")
        assert answer.status_code == 404
        # Exactly like a missing job, but for the id in the message.
        assert answer.json == {"error": {**missing.json["error"],
                                         "message": missing.json["error"]["message"].replace("no-such-job", job_id)}}
        cancel = client.post(f"/api/v1/jobs/{job_id}/cancel")
        assert (cancel.status_code, cancel.json["error"]["code"]) == (404, "job_not_found")
        assert provisioned.jobs.get(job_id).status == "queued"


def test_a_list_shows_only_the_owners_jobs_and_an_operator_sees_every_one(client, operator, provisioned):
    jobs = provisioned.jobs
    for i in range(5):
        jobs.create(f"alice-{i}", "camera-angle", {}, source="api", owner="alice")
        jobs.create(f"bob-{i}", "camera-angle", {}, source="api", owner="bob")
    jobs.transition("alice-1", "running")
    jobs.create("python-0", "camera-angle", {}, source="python")

    pages, cursor = [], None
    while True:
        answer = client.get("/api/v1/jobs", query_string={"limit": 2, **({"cursor": cursor} if cursor else {})})
        pages.append([job["job_id"] for job in answer.json["jobs"]])
        cursor = answer.json["next_cursor"]
        if not cursor:
            break
    assert [job for page in pages for job in page] == [f"alice-{i}" for i in reversed(range(5))]
    assert max(len(page) for page in pages) == 2

    running = client.get("/api/v1/jobs", query_string={"status": "running"}).json["jobs"]
    assert [job["job_id"] for job in running] == ["alice-1"]
    queued = client.get("/api/v1/jobs", query_string={"status": "queued", "limit": 100}).json["jobs"]
    assert {job["job_id"] for job in queued} == {f"alice-{i}" for i in (0, 2, 3, 4)}

    everyone = operator.get("/api/v1/jobs", query_string={"limit": 100}).json["jobs"]
    assert len(everyone) == 11
    assert operator.get("/api/v1/jobs/bob-3").json["owner"] == "bob"


def test_a_submission_belongs_to_the_keys_owner(client, provisioned, settings):
    answer = client.post("/api/v1/camera-angle/jobs",
                         json={"image": f"s3://{settings.bucket}/inputs/house.png", "move": "close_up"})

    assert answer.status_code == 202, answer.json
    assert provisioned.jobs.get(answer.json["job_id"]).owner == "alice"
    assert client.get(answer.headers["Location"]).json["owner"] == "alice"


def test_the_document_declares_the_bearer_scheme_and_the_open_operations(client):
    document = client.get("/openapi.json").json

    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert document["security"] == [{"bearerAuth": []}]
    assert document["paths"]["/health"]["get"]["security"] == []
    assert document["paths"]["/"]["get"]["security"] == []
    assert "security" not in document["paths"]["/api/v1/jobs"]["get"]  # the document's default: a key


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (None, None),
        ("", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("Basic abc", None),
        ("Bearer a b", None),
        ("Bearer gpo_abc_def", "gpo_abc_def"),
        ("bearer  gpo_abc_def ", "gpo_abc_def"),
    ],
)
def test_bearer_token(header, token):
    assert bearer_token(header) == token


@pytest.mark.parametrize(
    ("blueprint", "role"), [("jobs", USER), ("costs", OPERATOR), ("deadletters", OPERATOR), (None, OPERATOR)]
)
def test_a_blueprint_needs_the_role_it_was_registered_with_and_an_undeclared_one_an_operator(blueprint, role):
    assert needed_role(blueprint, {"jobs": USER, "costs": OPERATOR}) == role


def test_registering_a_later_blueprint_as_operator_only_takes_one_word(settings, celery_app, provisioned,
                                                                      api_key, operator_key):
    from flask.views import MethodView
    from flask_smorest import Blueprint

    from webapp.auth import register

    app = create_app(settings, celery_app=celery_app)
    later = Blueprint("later", __name__, url_prefix="/api/v1")

    @later.route("/later")
    class Later(MethodView):
        def get(self):
            return {"ok": True}

    register(app, app.extensions["flask-smorest"]["apis"][""]["ext_obj"], later, OPERATOR)
    assert keyed(app.test_client(), api_key).get("/api/v1/later").status_code == 403
    assert keyed(app.test_client(), operator_key).get("/api/v1/later").status_code == 200
    assert app.test_client().get("/api/v1/later").status_code == 401


def test_a_blueprint_registered_without_a_declaration_is_for_operators(settings, celery_app, provisioned, api_key,
                                                                       operator_key):
    import flask

    app = create_app(settings, celery_app=celery_app)
    plain = flask.Blueprint("plain", __name__)
    plain.add_url_rule("/plain", "plain", lambda: {"ok": True})
    app.register_blueprint(plain)
    assert keyed(app.test_client(), api_key).get("/plain").status_code == 403
    assert keyed(app.test_client(), operator_key).get("/plain").status_code == 200
