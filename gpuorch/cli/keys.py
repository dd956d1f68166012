"""`gpuorch keys create|list|revoke`: the API keys, directly in the key table (GPUORCH_KEY_TABLE)."""

from __future__ import annotations

import json
import sys

import click
from botocore.exceptions import BotoCoreError, ClientError

from gpuorch.access.keys import OPERATOR, USER, KeyStore
from gpuorch.aws.clients import AwsClients
from gpuorch.errors import ParamsInvalid, RequestRefused
from gpuorch.settings import Settings
from gpuorch.webhooks.events import EVENTS, subscription
from gpuorch.webhooks.secrets import SecretStore, new_secret


def _store(settings: Settings) -> KeyStore:
    return KeyStore(AwsClients(settings).dynamodb, settings.key_table)


def _secrets(settings: Settings) -> SecretStore:
    return SecretStore(AwsClients(settings).dynamodb, settings.control_table)


def _checked_webhook(settings: Settings, url: str | None, events: tuple[str, ...]) -> tuple[str, ...] | None:
    """The default webhook's events, once the URL and events pass the checks a submission's would."""
    if not url:
        if events:
            raise click.UsageError("--webhook-event needs --webhook")
        return None
    try:
        return subscription(url, list(events) or None, "key", allow_insecure=settings.allow_insecure_inputs).events
    except ParamsInvalid as exc:
        raise click.BadParameter("; ".join(r for reasons in exc.errors.values() for r in reasons),
                                 param_hint="'--webhook'") from None


_EVENT_CHOICE = click.Choice(EVENTS)


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
@click.option("--webhook", "webhook_url", metavar="URL", help="The webhook this key's submissions get when they name "
              "none (public https://).")
@click.option("--webhook-event", "webhook_events", multiple=True, type=_EVENT_CHOICE,
              help="An event the default webhook hears; repeatable.  [default: every status change]")
@click.option("--json", "as_json", is_flag=True, help="Print the key's record, its token and its webhook secret as JSON.")
@click.pass_obj
def keys_create(settings: Settings, owner: str, operator: bool, name: str, rate_per_minute: float | None,
                burst: int | None, monthly_cap_usd: float | None, webhook_url: str | None,
                webhook_events: tuple[str, ...], as_json: bool) -> None:
    """Create a key and print its token, once: only its hash is stored. Its webhook secret, which signs the
    webhooks of its jobs, is printed once too (on stderr, or in the JSON).

    Exit status: 0; 1 for a bad owner; 2 when AWS cannot be reached.
    """
    events = _checked_webhook(settings, webhook_url, webhook_events)
    key, token = _run(settings, lambda: _store(settings).create(
        owner, role=OPERATOR if operator else USER, name=name, rate_per_minute=rate_per_minute, burst=burst,
        monthly_cap_usd=monthly_cap_usd, webhook_url=webhook_url, webhook_events=events))
    secret = new_secret()
    _run(settings, lambda: _secrets(settings).put(key.key_id, secret))
    if as_json:
        click.echo(json.dumps({**key.public(), "token": token, "webhook_secret": secret}, indent=2))
        return
    click.echo(token)
    click.echo(f"key {key.key_id}: {key.role} key of {key.owner}. The token above is shown only now; send it as "
               f"Authorization: Bearer <token> (the CLI reads GPUORCH_API_KEY).", err=True)
    click.echo(f"webhook secret (shown only now; verify this key's webhooks with it): {secret}", err=True)


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


@keys.command("webhook")
@click.argument("key_id")
@click.option("--url", "webhook_url", metavar="URL", help="Set the key's default webhook (public https://).")
@click.option("--event", "webhook_events", multiple=True, type=_EVENT_CHOICE,
              help="An event the default webhook hears; repeatable.  [default: every status change]")
@click.option("--clear", is_flag=True, help="Remove the key's default webhook.")
@click.option("--new-secret", "rotate", is_flag=True,
              help="Make a new webhook secret for the key and print it, once (its webhooks are signed with it within "
                   "a minute; a key made before webhooks existed gets its first one so).")
@click.pass_obj
def keys_webhook(settings: Settings, key_id: str, webhook_url: str | None, webhook_events: tuple[str, ...],
                 clear: bool, rotate: bool) -> None:
    """Set or clear a key's default webhook, or give it a new webhook secret.

    Exit status: 0; 1 when no key has that id; 2 when AWS cannot be reached.
    """
    if clear and webhook_url:
        raise click.UsageError("give --url or --clear, not both")
    if not (clear or webhook_url or rotate):
        raise click.UsageError("give --url, --clear or --new-secret")
    store = _store(settings)
    if clear or webhook_url:
        events = _checked_webhook(settings, webhook_url, webhook_events)
        key = _run(settings, lambda: store.set_webhook(key_id, webhook_url, events))
        click.echo(f"key {key.key_id} ({key.owner}): default webhook "
                   + (f"{key.webhook_url} ({', '.join(key.webhook_events or ('every status change',))})"
                      if key.webhook_url else "none"))
    if rotate:
        if _run(settings, lambda: store.get(key_id)) is None:
            click.echo(f"error: no key has the id {key_id!r}", err=True)
            sys.exit(1)
        secret = new_secret()
        _run(settings, lambda: _secrets(settings).put(key_id, secret))
        click.echo(secret)
        click.echo(f"key {key_id}: new webhook secret above, shown only now; the control worker signs with it within "
                   "a minute", err=True)


@keys.command("revoke")
@click.argument("key_id")
@click.pass_obj
def keys_revoke(settings: Settings, key_id: str) -> None:
    """Revoke a key: the API refuses it within GPUORCH_KEY_CACHE_SECONDS.

    Exit status: 0 (also when it was already revoked); 1 when no key has that id; 2 when AWS cannot be reached.
    """
    key = _run(settings, lambda: _store(settings).revoke(key_id))
    click.echo(f"key {key.key_id} ({key.owner}): revoked at {key.revoked_at}")
