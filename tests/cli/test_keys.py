"""`gpuorch keys create|list|revoke` against the key table on the moto server."""

from __future__ import annotations

import dataclasses
import json

from gpuorch.access.keys import KeyStore, token_hash


def test_create_prints_the_token_once_and_stores_only_its_hash(gpuorch, provisioned, settings):
    created = gpuorch("keys", "create", "--owner", "alice", "--name", "laptop")
    assert created.exit_code == 0, created.output
    token = created.stdout.strip()
    assert token.startswith("gpo_") and "only now" in created.stderr

    store = KeyStore(provisioned.aws.dynamodb, settings.key_table)
    key = store.verify(token)
    assert (key.owner, key.role, key.name) == ("alice", "user", "laptop")
    item = provisioned.aws.dynamodb.scan(TableName=settings.key_table)["Items"][0]
    assert token not in json.dumps(item) and item["key_hash"]["S"] == token_hash(token)


def test_create_json_an_operator_key_with_its_own_limit(gpuorch, provisioned, settings):
    created = gpuorch("keys", "create", "--owner", "ops", "--operator", "--rate-per-minute", "120", "--burst", "20",
                      "--json")
    assert created.exit_code == 0, created.output
    record = json.loads(created.stdout)
    assert (record["role"], record["rate_per_minute"], record["burst"]) == ("operator", 120.0, 20)
    key = KeyStore(provisioned.aws.dynamodb, settings.key_table).verify(record["token"])
    assert key.key_id == record["key_id"] and key.operator


def test_list_shows_every_key_but_never_a_token_or_hash(gpuorch, provisioned):
    tokens = [gpuorch("keys", "create", "--owner", owner).stdout.strip() for owner in ("alice", "bob")]
    listed = gpuorch("keys", "list", "--json")
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert [row["owner"] for row in rows] == ["alice", "bob"]
    assert all("key_hash" not in row and "token" not in row for row in rows)
    text = gpuorch("keys", "list").stdout
    assert all(token not in text and token not in listed.stdout for token in tokens)
    assert all(row["key_id"] in text for row in rows)


def test_revoke_marks_the_key_and_the_table_refuses_it(gpuorch, provisioned, settings):
    token = gpuorch("keys", "create", "--owner", "alice").stdout.strip()
    key_id = token.split("_")[1]

    revoked = gpuorch("keys", "revoke", key_id)
    assert revoked.exit_code == 0 and key_id in revoked.stdout
    assert KeyStore(provisioned.aws.dynamodb, settings.key_table).verify(token) is None
    [row] = json.loads(gpuorch("keys", "list", "--json").stdout)
    assert row["revoked_at"]
    again = gpuorch("keys", "revoke", key_id)  # idempotent: the first time is kept
    assert again.exit_code == 0 and row["revoked_at"] in again.stdout


def test_revoking_an_unknown_key_exits_1(gpuorch, provisioned):
    answer = gpuorch("keys", "revoke", "0123456789ab")
    assert answer.exit_code == 1 and "no key has the id" in answer.stderr


def test_a_bad_owner_exits_1_naming_it(gpuorch, provisioned):
    answer = gpuorch("keys", "create", "--owner", "two words")
    assert answer.exit_code == 1 and "owner:" in answer.stderr


def test_an_unreachable_table_exits_2(gpuorch, settings):
    from tests.webapp.test_api_health import closed_port

    gone = dataclasses.replace(settings, aws_endpoint_url=f"http://127.0.0.1:{closed_port()}")
    answer = gpuorch("keys", "list", settings=gone)
    assert answer.exit_code == 2 and "cannot reach the key table" in answer.stderr


def test_create_prints_a_webhook_secret_once_and_sets_a_default_webhook(gpuorch, provisioned, settings):
    from gpuorch.webhooks.secrets import SecretStore

    created = gpuorch("keys", "create", "--owner", "alice", "--webhook", "https://hooks.example.com/gpuorch",
                      "--webhook-event", "job.succeeded", "--json")
    assert created.exit_code == 0, created.output
    record = json.loads(created.stdout)
    assert record["webhook_url"] == "https://hooks.example.com/gpuorch"
    assert record["webhook_events"] == ["job.succeeded"]
    secrets = SecretStore(provisioned.aws.dynamodb, settings.control_table)
    assert record["webhook_secret"].startswith("whsec_") and secrets.get(record["key_id"]) == record["webhook_secret"]
    listed = gpuorch("keys", "list", "--json").stdout
    assert record["webhook_secret"] not in listed and "hooks.example.com" in listed

    refused = gpuorch("keys", "create", "--owner", "alice", "--webhook", "http://10.0.0.1/x")
    assert refused.exit_code == 2 and "webhook" in refused.output

    rotated = gpuorch("keys", "webhook", record["key_id"], "--new-secret")
    assert rotated.exit_code == 0, rotated.output
    assert secrets.get(record["key_id"]) == rotated.stdout.strip() != record["webhook_secret"]
    cleared = gpuorch("keys", "webhook", record["key_id"], "--clear")
    assert cleared.exit_code == 0 and "default webhook none" in cleared.stdout
    assert gpuorch("keys", "webhook", "0123456789ab", "--url", "https://h.example.com/x").exit_code == 1
