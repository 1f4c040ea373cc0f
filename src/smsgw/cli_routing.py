"""``smsgw provider``, ``smsgw route`` and ``smsgw mo-route``: where traffic goes.

Registered on ``smsgw.cli.main`` when imported (``smsgw.cluster.entry`` does, like
``smsgw.cli_dlq``): this module imports ``smsgw.cli``, never the other way round.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from smsgw.cli import _config_errors, _db, _print_one, _print_rows, load_settings, main
from smsgw.reframe import SEGMENTATION_MODES

_ID_FORMATS = click.Choice(["hex", "dec", "str"])
_BIND_MODES = click.Choice(["trx", "tx+rx"])
_REQUEST_RECEIPTS = click.Choice(["always", "as-customer"])
F = TypeVar("F", bound=Callable[..., Any])


def _names(value: str | None) -> list[str] | None:
    """``--failover a,b`` -> ['a', 'b']; '' -> [] (clear); not given -> None."""
    if value is None:
        return None
    return [n.strip() for n in value.split(",") if n.strip()]


def _show(data: dict[str, Any], as_json: bool) -> None:
    _print_one(data if as_json else _for_table(data), as_json)


def _for_table(row: dict[str, Any]) -> dict[str, Any]:
    """Human table cells: say 'all'/'any' instead of printing None or nothing."""
    out = dict(row)
    if "prefix" in out:
        out["prefix"] = out["prefix"] or "''"
    if "customer" in out and out["customer"] is None:
        out["customer"] = "(all)"
    if "source_prefix" in out and out["source_prefix"] is None:
        out["source_prefix"] = "(any)"
    return out


def _rows(rows: list[dict[str, Any]], as_json: bool) -> None:
    _print_rows(rows if as_json else [_for_table(r) for r in rows], as_json)


# -- providers ---------------------------------------------------------------


@main.group()
def provider() -> None:
    """Providers (SMSCs) the gateway binds to and sends through.

    \b
    Examples:
      smsgw provider add acme-uk --host smsc.acme.example --port 2775 \\
          --system-id gw01 --password s3cret --binds 2 --tps 50
      smsgw provider add hexco --host 10.0.0.7 --port 2775 --system-id gw \\
          --password pw --submit-id-format hex --receipt-id-format dec
      smsgw provider update acme-uk --tps 80
      smsgw provider update acme-uk --tls --port 3550 --tls-ca /etc/smsgw/acme-ca.pem
      smsgw provider list --json
    """


def _provider_options(adding: bool) -> Callable[[F], F]:
    """The settings shared by `add` (with defaults) and `update` (None = keep)."""

    def opt(*decls: str, default: Any, **kw: Any) -> Callable[[F], F]:
        if adding:
            return click.option(*decls, default=default, show_default=True, **kw)
        return click.option(*decls, default=None, **kw)

    options = [
        opt("--system-type", default="", help="bind system_type (≤ 12 chars)."),
        opt("--bind-mode", type=_BIND_MODES, default="trx", help="One transceiver or TX+RX."),
        opt("--binds", type=int, default=1, help="Binds (sessions) across the cluster."),
        opt("--tps", type=int, default=10, help="Contracted msg/s for all binds together."),
        opt("--window", type=int, default=10, help="Outstanding submits per bind."),
        opt(
            "--enquire-link", "enquire_link_s", type=int, default=30, help="enquire_link every N s."
        ),
        opt("--submit-id-format", type=_ID_FORMATS, default="str", help="Id in submit_sm_resp."),
        opt("--receipt-id-format", type=_ID_FORMATS, default="str", help="Id in receipts."),
        opt(
            "--segmentation",
            type=click.Choice(SEGMENTATION_MODES),
            default="keep",
            help="Multipart framing the provider wants: keep the customer's, or re-segment"
            " into 8/16-bit UDH or SAR (also splits long message_payload).",
        ),
        opt(
            "--request-receipts",
            type=_REQUEST_RECEIPTS,
            default="always",
            help="Ask the provider for a receipt on every message (the gateway's message"
            " states need it), or only when the customer asked for one.",
        ),
        opt("--tls/--no-tls", "tls", default=False, help="SMPP over TLS to the provider."),
        opt(
            "--tls-ca",
            "tls_ca_file",
            type=click.Path(exists=True, dir_okay=False, resolve_path=True),
            default=None,
            help="PEM CA file the provider's certificate must chain to (default: system CAs).",
        ),
        opt(
            "--verify-hostname/--no-verify-hostname",
            "tls_verify_hostname",
            default=True,
            help="Check that the certificate names --host (opt out only for an SMSC whose"
            " certificate does not; its chain is still verified).",
        ),
        opt(
            "--message-ttl",
            "message_ttl_s",
            type=click.IntRange(min=0),
            default=0,
            help="Seconds a message may wait for this provider before it expires (err:903);"
            " 0: SMSGW_MESSAGE_TTL_S. A shorter validity_period wins.",
        ),
        opt(
            "--max-pdu-octets",
            type=click.IntRange(min=64),
            default=65536,
            help="Largest submit_sm the provider takes; bigger messages fail (err:907).",
        ),
        opt(
            "--max-unknown-attempts",
            type=click.IntRange(min=1),
            default=3,
            help="Sends left unanswered (connection lost, timeout) before a message"
            " fails alone (err:906).",
        ),
    ]

    def decorate(fn: F) -> F:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


def _sealer(ctx: click.Context) -> Any:
    """Provider passwords are stored encrypted with the key in $SMSGW_HOME (issue 11)."""
    from smsgw.sealing import Sealer

    return Sealer.for_home(load_settings(ctx).home)


@provider.command("add")
@click.argument("name")
@click.option("--host", required=True, help="SMSC host name or IP.")
@click.option("--port", type=int, required=True, help="SMSC SMPP port.")
@click.option("--system-id", required=True, help="Our system_id at the provider.")
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    help="Our password (≤ 8 chars; stored encrypted), or file:/PATH of a secret file read"
    " at bind time; prompted if omitted.",
)
@_provider_options(adding=True)
@click.option("--disabled", is_flag=True, help="Create it disabled (no binds).")
@click.pass_context
def provider_add(ctx: click.Context, /, name: str, disabled: bool, **settings: Any) -> None:
    """Add provider NAME; running gateways bind to it within a second."""
    from smsgw.db.providers import add_provider

    with _config_errors(), _db(ctx) as conn:
        p = add_provider(conn, name, enabled=not disabled, sealer=_sealer(ctx), **settings)
    click.echo(f"provider {p.name} added (id {p.id})")


@provider.command("update")
@click.argument("name")
@click.option("--host", help="SMSC host name or IP.")
@click.option("--port", type=int, help="SMSC SMPP port.")
@click.option("--system-id", help="Our system_id at the provider.")
@click.option("--password", help="Our password (≤ 8 chars), or file:/PATH of a secret file.")
@_provider_options(adding=False)
@click.option("--enable/--disable", "enabled", default=None, help="Disabling unbinds it.")
@click.pass_context
def provider_update(ctx: click.Context, /, name: str, **changes: Any) -> None:
    """Change provider NAME; running gateways apply it within a second."""
    from smsgw.db.providers import update_provider

    with _config_errors(), _db(ctx) as conn:
        update_provider(conn, name, sealer=_sealer(ctx), **changes)
    click.echo(f"provider {name} updated")


@provider.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def provider_list(ctx: click.Context, as_json: bool) -> None:
    """List providers (never their passwords)."""
    from smsgw.db.providers import list_providers

    with _db(ctx) as conn:
        providers = [p.public() for p in list_providers(conn)]
    _print_rows(providers if as_json else [_provider_cells(p) for p in providers], as_json)


def _provider_cells(p: dict[str, Any]) -> dict[str, Any]:
    """The table's columns, within 100 characters (`provider show` has every field)."""
    return {
        "name": p["name"],
        "address": f"{p['host']}:{p['port']}",
        "system_id": p["system_id"],
        "mode": p["bind_mode"],
        "binds": p["binds"],
        "tps": p["tps"],
        "ids": f"{p['submit_id_format']}/{p['receipt_id_format']}",
        "receipts": p["request_receipts"],
        "on": "yes" if p["enabled"] else "no",
    }


@provider.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def provider_show(ctx: click.Context, name: str, as_json: bool) -> None:
    """Show one provider (never its password)."""
    from smsgw.db.providers import get_provider

    with _config_errors(), _db(ctx) as conn:
        _show(get_provider(conn, name).public(), as_json)


@provider.command("remove")
@click.argument("name")
@click.option(
    "--drain",
    type=click.Choice(["fail", "reroute"]),
    help="Messages still queued for NAME: fail each (receipt err:908), or route each"
    " again with the current routes. Without it, removal is refused while any wait.",
)
@click.pass_context
def provider_remove(ctx: click.Context, name: str, drain: str | None) -> None:
    """Remove provider NAME; refused while a route uses it or messages wait for it.

    Its queue (topic out.NAME) is deleted with it: a provider added later under
    the same name never sends what was queued for this one.
    """
    from confluent_kafka import KafkaException

    from smsgw import drain as drains
    from smsgw.cli import load_settings
    from smsgw.db.providers import check_removable, remove_provider, update_provider
    from smsgw.topics import Topics

    settings = load_settings(ctx)
    with _config_errors(), _db(ctx) as conn:
        check_removable(conn, name)
    bootstrap = settings.kafka_bootstrap
    if not bootstrap:
        raise click.ClickException(
            "no Kafka to check the provider's queue: start the gateway (`make run`)"
            " or set SMSGW_KAFKA_BOOTSTRAP"
        )
    topics = Topics(settings.topic_prefix)
    with _config_errors(), _db(ctx) as conn:
        check_removable(conn, name)
        try:
            waiting = drains.count(bootstrap, topics, name)
        except (KafkaException, TimeoutError) as exc:
            raise click.ClickException(
                f"cannot read the provider's queue on Kafka ({bootstrap}): {exc}"
            ) from exc
        if waiting and drain is None:
            raise click.ClickException(
                f"provider {name!r} has {waiting} message(s) queued ({topics.outbound(name)});"
                " use --drain fail (each gets a failure receipt) or --drain reroute"
                " (each is routed again with the current routes)"
            )
        if waiting:
            update_provider(conn, name, enabled=False)  # its binds stop within a second
            try:
                drains.wait_group_empty(bootstrap, drains.group_of(topics, name))
            except TimeoutError as exc:
                raise click.ClickException(f"{exc}; provider {name!r} left disabled") from exc
            assert drain is not None
            done = drains.drain(
                bootstrap, topics, name, drain, receipt_ttl_s=settings.delivery_ttl_s
            )
            verb = "failed" if drain == "fail" else "sent to be routed again"
            click.echo(f"{done} queued message(s) {verb}")
        remove_provider(conn, name)
    try:
        drains.wait_group_empty(bootstrap, drains.group_of(topics, name))
        drains.forget(bootstrap, topics, name)
    except (TimeoutError, KafkaException) as exc:
        raise click.ClickException(
            f"provider {name} removed, but its queue {topics.outbound(name)} could not be"
            f" deleted ({exc}); delete it before adding a provider of that name again"
        ) from exc
    click.echo(f"provider {name} removed")


# -- MT routes ---------------------------------------------------------------


@main.group()
def route() -> None:
    """MT routes: which provider carries a customer's messages.

    The longest destination prefix wins; at equal prefixes a customer's own
    route beats a route for all, then a matching --source-prefix (longer
    first), then the higher --priority. A leading '+' is ignored; '00' is not.

    \b
    Examples:
      smsgw route add --prefix '' --provider acme-uk            # catch-all
      smsgw route add --prefix 4479 --provider acme-uk --failover hexco
      smsgw route add --prefix 44 --customer shop --provider hexco --priority 5
      smsgw route add --prefix 1 --source-prefix BANK --provider acme-uk
      smsgw route list --json
    """


@route.command("add")
@click.option("--prefix", required=True, help="Destination prefix, digits ('' = all).")
@click.option("--provider", "provider_name", required=True, help="Provider name.")
@click.option("--customer", help="Only for this customer (system_id); default: all.")
@click.option("--source-prefix", help="Only for source addresses starting so.")
@click.option("--priority", type=int, default=0, show_default=True, help="Higher wins.")
@click.option("--failover", help="Providers to try next, in order: A,B.")
@click.pass_context
def route_add(
    ctx: click.Context,
    prefix: str,
    provider_name: str,
    customer: str | None,
    source_prefix: str | None,
    priority: int,
    failover: str | None,
) -> None:
    """Add an MT route; running gateways use it within a second."""
    from smsgw.db.routes import add_mt_route

    with _config_errors(), _db(ctx) as conn:
        r = add_mt_route(
            conn,
            prefix=prefix,
            provider=provider_name,
            customer=customer,
            source_prefix=source_prefix,
            priority=priority,
            failover=_names(failover) or (),
        )
    click.echo(f"route {r.id} added")


@route.command("update")
@click.argument("route_id", metavar="ID", type=int)
@click.option("--provider", "provider_name", help="New primary provider.")
@click.option("--priority", type=int, help="New priority.")
@click.option("--failover", help="Replace failover list: A,B ('' clears it).")
@click.pass_context
def route_update(
    ctx: click.Context,
    route_id: int,
    provider_name: str | None,
    priority: int | None,
    failover: str | None,
) -> None:
    """Change route ID's provider, priority or failover.

    To change what a route matches (prefix, customer, source), remove and add.
    """
    from smsgw.db.routes import update_mt_route

    with _config_errors(), _db(ctx) as conn:
        update_mt_route(
            conn, route_id, provider=provider_name, priority=priority, failover=_names(failover)
        )
    click.echo(f"route {route_id} updated")


@route.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def route_list(ctx: click.Context, as_json: bool) -> None:
    """List MT routes by prefix."""
    from smsgw.db.routes import list_mt_routes

    with _db(ctx) as conn:
        _rows([r.public() for r in list_mt_routes(conn)], as_json)


@route.command("show")
@click.argument("route_id", metavar="ID", type=int)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def route_show(ctx: click.Context, route_id: int, as_json: bool) -> None:
    """Show one MT route."""
    from smsgw.db.routes import get_mt_route

    with _config_errors(), _db(ctx) as conn:
        _show(get_mt_route(conn, route_id).public(), as_json)


@route.command("remove")
@click.argument("route_id", metavar="ID", type=int)
@click.pass_context
def route_remove(ctx: click.Context, route_id: int) -> None:
    """Remove MT route ID."""
    from smsgw.db.routes import remove_mt_route

    with _config_errors(), _db(ctx) as conn:
        remove_mt_route(conn, route_id)
    click.echo(f"route {route_id} removed")


# -- MO routes ---------------------------------------------------------------


@main.group("mo-route")
def mo_route() -> None:
    """MO routes: which customer receives messages sent to a number.

    The longest prefix wins; a full number is just a long prefix.

    \b
    Examples:
      smsgw mo-route add --prefix 447700900123 --customer shop
      smsgw mo-route add --prefix 4477009 --customer bank
      smsgw mo-route list --json
    """


@mo_route.command("add")
@click.option("--prefix", required=True, help="Destination number or prefix, digits.")
@click.option("--customer", required=True, help="Receiving customer (system_id).")
@click.pass_context
def mo_route_add(ctx: click.Context, prefix: str, customer: str) -> None:
    """Add an MO route; running gateways use it within a second."""
    from smsgw.db.routes import add_mo_route

    with _config_errors(), _db(ctx) as conn:
        r = add_mo_route(conn, prefix, customer)
    click.echo(f"mo-route {r.id} added")


@mo_route.command("update")
@click.argument("route_id", metavar="ID", type=int)
@click.option("--customer", required=True, help="New receiving customer (system_id).")
@click.pass_context
def mo_route_update(ctx: click.Context, route_id: int, customer: str) -> None:
    """Send MO route ID to another customer."""
    from smsgw.db.routes import update_mo_route

    with _config_errors(), _db(ctx) as conn:
        update_mo_route(conn, route_id, customer)
    click.echo(f"mo-route {route_id} updated")


@mo_route.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def mo_route_list(ctx: click.Context, as_json: bool) -> None:
    """List MO routes by prefix."""
    from smsgw.db.routes import list_mo_routes

    with _db(ctx) as conn:
        _rows([r.public() for r in list_mo_routes(conn)], as_json)


@mo_route.command("show")
@click.argument("route_id", metavar="ID", type=int)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def mo_route_show(ctx: click.Context, route_id: int, as_json: bool) -> None:
    """Show one MO route."""
    from smsgw.db.routes import get_mo_route

    with _config_errors(), _db(ctx) as conn:
        _show(get_mo_route(conn, route_id).public(), as_json)


@mo_route.command("remove")
@click.argument("route_id", metavar="ID", type=int)
@click.pass_context
def mo_route_remove(ctx: click.Context, route_id: int) -> None:
    """Remove MO route ID."""
    from smsgw.db.routes import remove_mo_route

    with _config_errors(), _db(ctx) as conn:
        remove_mo_route(conn, route_id)
    click.echo(f"mo-route {route_id} removed")
