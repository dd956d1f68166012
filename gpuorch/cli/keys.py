"""`gpuorch keys create|list|revoke`: the API keys, directly in the key table (GPUORCH_KEY_TABLE)."""

from __future__ import annotations

import json
import sys

import click
from botocore.exceptions import BotoCoreError, ClientError

from gpuorch.access.keys import OPERATOR, USER, KeyStore
from gpuorch.aws.clients import AwsClients
from gpuorch.errors import RequestRefused
from gpuorch.settings import Settings


def _store(settings: Settings) -> KeyStore:
    return KeyStore(AwsClients(settings).dynamodb, settings.key_table)


def _run(settings: Settings, action):
    """Run a key-table action; exit 1 when it is refused, 2 when AWS cannot be reached."""
    try:
        return action()
    except RequestRefused as exc:  # a field a key cannot have, or an id no key has
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except (BotoCoreError, ClientError) as exc:
        target = settings.aws_endpoint_url or f"AWS {settings.region}"
        click.echo(f"error: cannot reach the key table {settings.key_table} on {target}: {exc}", err=True)
        sys.exit(2)


@click.group()
def keys() -> None:
    """API keys: each request to the API sends one as Authorization: Bearer <key>."""


@keys.command("create")
@click.option("--owner", required=True, help="Whose key: jobs submitted with it are this owner's, and only this "
                                             "owner's keys (and operators') see them.")
@click.option("--operator", is_flag=True, help="An operator key: the GPU and cost routes, and every owner's jobs.")
@click.option("--name", default="", help="What the key is for, shown by `keys list`.")
@click.option("--rate-per-minute", type=click.FloatRange(0), default=None,
              help="This key's submissions per minute (0: no limit).  [default: GPUORCH_RATE_LIMIT_PER_MINUTE]")
@click.option("--burst", type=click.IntRange(1), default=None,
              help="This key's burst of submissions.  [default: GPUORCH_RATE_LIMIT_BURST]")
@click.option("--monthly-cap-usd", type=click.FloatRange(0), default=None,
              help="Refuse this key's submissions once its owner's GPU spend this month reaches this many dollars "
                   "(0: no cap).  [default: GPUORCH_OWNER_MONTHLY_CAP_USD]")
@click.option("--json", "as_json", is_flag=True, help="Print the key's record and its token as JSON.")
@click.pass_obj
def keys_create(settings: Settings, owner: str, operator: bool, name: str, rate_per_minute: float | None,
                burst: int | None, monthly_cap_usd: float | None, as_json: bool) -> None:
    """Create a key and print its token, once: only its hash is stored.

    Exit status: 0; 1 for a bad owner; 2 when AWS cannot be reached.
    """
    key, token = _run(settings, lambda: _store(settings).create(
        owner, role=OPERATOR if operator else USER, name=name, rate_per_minute=rate_per_minute, burst=burst,
        monthly_cap_usd=monthly_cap_usd))
    if as_json:
        click.echo(json.dumps({**key.public(), "token": token}, indent=2))
        return
    click.echo(token)
    click.echo(f"key {key.key_id}: {key.role} key of {key.owner}. The token above is shown only now; send it as "
               f"Authorization: Bearer <token> (the CLI reads GPUORCH_API_KEY).", err=True)


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per key, in a list.")
@click.pass_obj
def keys_list(settings: Settings, as_json: bool) -> None:
    """Every key: id, owner, role, name, when created and revoked (never a token or its hash).

    Exit status: 0; 2 when AWS cannot be reached.
    """
    found = _run(settings, lambda: _store(settings).list())
    rows = [key.public() for key in found]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif not rows:
        click.echo(f"no keys in {settings.key_table}")
    else:
        for row in rows:
            revoked = f"revoked {row['revoked_at']}" if row["revoked_at"] else "live"
            click.echo(f"{row['key_id']}  {row['owner']:<20} {row['role']:<8} {revoked:<38} {row['name']}")


@keys.command("revoke")
@click.argument("key_id")
@click.pass_obj
def keys_revoke(settings: Settings, key_id: str) -> None:
    """Revoke a key: the API refuses it within GPUORCH_KEY_CACHE_SECONDS.

    Exit status: 0 (also when it was already revoked); 1 when no key has that id; 2 when AWS cannot be reached.
    """
    key = _run(settings, lambda: _store(settings).revoke(key_id))
    click.echo(f"key {key.key_id} ({key.owner}): revoked at {key.revoked_at}")
