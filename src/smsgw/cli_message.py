"""``smsgw message show|find``: one message's fate, from the history the gateway keeps.

The history stage writes every message's events to PostgreSQL (table
``message_event``, see docs/ARCHITECTURE.md); these commands only read it.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import click

from smsgw.cli import _db, main
from smsgw.history import FAILED_STATES, format_story, mask, parse_since, story
from smsgw.state import MessageState

STATE_CHOICES = ["failed", *(s.name.lower() for s in MessageState)]


@main.group()
def message() -> None:
    """One message's history (accepted, routed, sent, receipt, delivered)."""


@message.command("show")
@click.argument("message_id", required=False)
@click.option("--provider-id", help="PROVIDER:ID, the id the provider gave in submit_sm_resp.")
@click.option("--unmask", is_flag=True, help="Show source and destination in full.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def message_show(
    ctx: click.Context,
    message_id: str | None,
    provider_id: str | None,
    unmask: bool,
    as_json: bool,
) -> None:
    """Print the whole history of gateway id MESSAGE_ID (or of --provider-id P:ID)."""
    from smsgw.db import history as store

    if bool(message_id) == bool(provider_id):
        raise click.UsageError("give a gateway MESSAGE_ID or --provider-id PROVIDER:ID")
    with _db(ctx) as conn:
        if provider_id:
            provider, sep, pid = provider_id.partition(":")
            if not sep or not provider or not pid:
                raise click.UsageError("--provider-id takes PROVIDER:ID, e.g. smsc1:0a1b2c")
            ids = store.by_provider_id(conn, provider, pid)
            if not ids:
                raise click.ClickException(f"no message was sent to {provider} as {pid!r}")
        else:
            ids = [message_id or ""]
        stories = [story(mid, store.history(conn, mid), unmask=unmask) for mid in ids]
    if all(not s["events"] for s in stories):
        raise click.ClickException(
            f"message {ids[0]} is not in the history (unknown id, or older than "
            "the retention, SMSGW_HISTORY_RETENTION_DAYS)"
        )
    if as_json:
        click.echo(json.dumps(stories[0] if len(stories) == 1 else stories, indent=2))
    else:
        click.echo("\n\n".join(format_story(s) for s in stories))


@message.command("find")
@click.option("--customer", required=True, help="The customer's system_id.")
@click.option("--since", default="10m", show_default=True, help="How far back: 30s, 10m, 2h, 1d.")
@click.option(
    "--state",
    type=click.Choice(STATE_CHOICES, case_sensitive=False),
    help="Only messages in this state (failed: expired, deleted, undeliverable, rejected).",
)
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--unmask", is_flag=True, help="Show destinations in full.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def message_find(
    ctx: click.Context,
    customer: str,
    since: str,
    state: str | None,
    limit: int,
    unmask: bool,
    as_json: bool,
) -> None:
    """List a customer's recent messages, newest first, with their current state."""
    from smsgw.db import history as store

    try:
        seconds = parse_since(since)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from exc
    states: tuple[int, ...] = ()
    if state == "failed":
        states = tuple(int(s) for s in FAILED_STATES)
    elif state:
        states = (int(MessageState[state.upper()]),)
    start = dt.datetime.fromtimestamp(time.time() - seconds, dt.UTC)
    with _db(ctx) as conn:
        rows = store.find(conn, customer, start, states=states, limit=limit)
    out: list[dict[str, Any]] = []
    for r in rows:
        out.append(
            {
                "id": r["id"],
                "accepted": dt.datetime.fromtimestamp(r["accepted_at"], dt.UTC).isoformat(
                    timespec="seconds"
                ),
                "destination": r["destination"] if unmask else mask(r["destination"]),
                "state": MessageState(r["state"]).name.lower(),
                "why": r["stage"] + (f" err={r['error']}" if r["error"] else ""),
            }
        )
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    if not out:
        click.echo("(none)")
        return
    cols = list(out[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in out)) for c in cols}
    click.echo("  ".join(c.upper().ljust(widths[c]) for c in cols).rstrip())
    for r in out:
        click.echo("  ".join(str(r[c]).ljust(widths[c]) for c in cols).rstrip())
