"""The ``smsgw`` command line: configuration commands that need only PostgreSQL.

Runtime commands (run, status, stop) are added by ``smsgw.cluster.entry``,
which knows how to start the infrastructure; this module does not. The
provider/route commands (``smsgw.cli_routing``) and the dlq commands
(``smsgw.cli_dlq``) import this module and register themselves on ``main``;
``smsgw.cluster.entry`` imports them all.
"""

from __future__ import annotations

from typing import Any

import click

from smsgw.settings import Settings


def raw_settings(ctx: click.Context) -> Settings:
    """Settings from flags, environment and .env only."""
    settings = ctx.find_object(Settings)
    if settings is None:
        raise click.UsageError("settings were not loaded")
    return settings


def load_settings(ctx: click.Context) -> Settings:
    """Settings completed with the services of a running ``smsgw run``.

    Every Kafka client of this command then uses their security settings.
    """
    from smsgw.kafka.security import use_settings

    settings = raw_settings(ctx).with_runtime()
    use_settings(settings)
    return settings


def database_url(settings: Settings) -> str:
    if not settings.database_url:
        raise click.ClickException(
            "no database: start the gateway with `make run` / `smsgw run`, "
            "or set SMSGW_DATABASE_URL=postgresql://user:password@host:port/db"
        )
    return settings.database_url


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--home", type=click.Path(file_okay=False), help="Data dir (env SMSGW_HOME).")
@click.option(
    "--kafka-bootstrap", help="External Kafka, host:port[,…] (env SMSGW_KAFKA_BOOTSTRAP)."
)
@click.option("--database-url", help="External PostgreSQL URL (env SMSGW_DATABASE_URL).")
@click.option("--ray-address", help="Ray cluster to join, host:port (env RAY_ADDRESS).")
@click.option("--log-level", help="DEBUG, INFO, WARNING… (env SMSGW_LOG_LEVEL).")
@click.version_option(package_name="smsgw")
@click.pass_context
def main(ctx: click.Context, /, **flags: Any) -> None:
    """smsgw: an SMPP 3.4 SMS gateway on Ray, Apache Kafka and PostgreSQL."""
    given = {k: v for k, v in flags.items() if v is not None}
    try:
        settings = Settings(**given)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    ctx.obj = settings


@main.command()
@click.pass_context
def migrate(ctx: click.Context) -> None:
    """Apply missing schema migrations to the configuration database."""
    from smsgw.db.migrate import migrate as run_migrations

    applied = run_migrations(database_url(load_settings(ctx)))
    for mig in applied:
        click.echo(f"applied {mig.version:04d}_{mig.name}")
    if not applied:
        click.echo("schema is up to date")


def _db(ctx: click.Context) -> Any:
    import psycopg

    try:
        return psycopg.connect(database_url(load_settings(ctx)), connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise click.ClickException(f"cannot reach the configuration database: {exc}") from exc


def _config_errors() -> Any:
    """Turn ConfigError into a one-line CLI error that says what to fix."""
    import contextlib

    from smsgw.db.customers import ConfigError

    @contextlib.contextmanager
    def guard() -> Any:
        try:
            yield
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from exc

    return guard()


def _print_rows(rows: list[dict[str, Any]], as_json: bool) -> None:
    import json

    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        click.echo("(none)")
        return
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(_cell(r[c])) for r in rows)) for c in cols}
    click.echo("  ".join(c.upper().ljust(widths[c]) for c in cols))
    for r in rows:
        click.echo("  ".join(_cell(r[c]).ljust(widths[c]) for c in cols))


def _print_one(data: dict[str, Any], as_json: bool) -> None:
    """One object: ``key  value`` lines for a person, JSON with ``--json``."""
    import json

    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    width = max((len(k) for k in data), default=0)
    for k, v in data.items():
        click.echo(f"{k.replace('_', ' '):<{width}}  {_cell(v) if v is not None else '-'}")


def _cell(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) or "-"
    return str(value)


@main.group()
def customer() -> None:
    """Customers (ESMEs) allowed to bind over SMPP."""


def _client_cert_options(fn: Any) -> Any:
    """TLS client-certificate settings of a customer (issue 11), for add and update."""
    fn = click.option(
        "--client-cert-cn", help="Pin the certificate's subject common name (with --require-...)."
    )(fn)
    fn = click.option(
        "--client-cert",
        "client_cert_file",
        type=click.Path(exists=True, dir_okay=False),
        help="Pin this PEM certificate (its SHA-256 fingerprint is stored).",
    )(fn)
    fn = click.option("--client-cert-sha256", help="Pin the certificate by SHA-256 fingerprint.")(
        fn
    )
    fn = click.option(
        "--tls-client-ca",
        "client_ca_file",
        type=click.Path(exists=True, dir_okay=False),
        help="The customer's own CA (PEM): its client certificate must be issued by it.",
    )(fn)
    return click.option(
        "--require-client-cert/--no-require-client-cert",
        default=None,
        help="Binds only over TLS with a client certificate verified against "
        "SMSGW_SMPP_TLS_CLIENT_CA or --tls-client-ca (--no-...: drop it and its pins).",
    )(fn)


def _client_cert_kwargs(tls: dict[str, Any], adding: bool) -> dict[str, Any]:
    from pathlib import Path

    from smsgw.tls import file_fingerprint

    ca_file = tls.pop("client_ca_file", None)
    if ca_file:
        tls["client_ca_pem"] = Path(ca_file).read_text()
    cert_file = tls.pop("client_cert_file", None)
    if cert_file:
        tls["client_cert_sha256"] = file_fingerprint(Path(cert_file))
    if adding:
        tls["require_client_cert"] = bool(tls.get("require_client_cert"))
    return tls


@customer.command("add")
@click.argument("system_id")
@click.option("--password", prompt=True, hide_input=True, help="SMPP password, at most 8 chars.")
@click.option("--tps", type=int, default=100, show_default=True, help="Max submits per second.")
@click.option("--max-binds", type=int, default=4, show_default=True, help="Concurrent binds.")
@click.option("--allow-ip", "allow_ips", multiple=True, help="CIDR allowed to bind; repeatable.")
@click.option("--disabled", is_flag=True, help="Create it disabled (binds refused).")
@_client_cert_options
@click.pass_context
def customer_add(
    ctx: click.Context,
    /,
    system_id: str,
    password: str,
    tps: int,
    max_binds: int,
    allow_ips: tuple[str, ...],
    disabled: bool,
    **tls: Any,
) -> None:
    """Add customer SYSTEM_ID; a running gateway accepts its binds within a second."""
    from smsgw.db.customers import add_customer

    with _config_errors(), _db(ctx) as conn:
        c = add_customer(
            conn,
            system_id,
            password,
            tps=tps,
            max_binds=max_binds,
            allow_ips=allow_ips,
            enabled=not disabled,
            **_client_cert_kwargs(tls, adding=True),
        )
    click.echo(f"customer {c.system_id} added (id {c.id})")


@customer.command("update")
@click.argument("system_id")
@click.option("--password", help="New SMPP password.")
@click.option("--tps", type=int, help="Max submits per second.")
@click.option("--max-binds", type=int, help="Concurrent binds.")
@click.option("--allow-ip", "allow_ips", multiple=True, help="Replace the allowlist; repeatable.")
@click.option("--clear-allow-ip", is_flag=True, help="Allow binds from any address.")
@click.option("--enable/--disable", "enabled", default=None, help="Disabling unbinds it now.")
@_client_cert_options
@click.pass_context
def customer_update(
    ctx: click.Context,
    /,
    system_id: str,
    password: str | None,
    tps: int | None,
    max_binds: int | None,
    allow_ips: tuple[str, ...],
    clear_allow_ip: bool,
    enabled: bool | None,
    **tls: Any,
) -> None:
    """Change customer SYSTEM_ID; running gateways apply it within a second."""
    from smsgw.db.customers import update_customer

    ips: list[str] | None = [] if clear_allow_ip else (list(allow_ips) if allow_ips else None)
    with _config_errors(), _db(ctx) as conn:
        update_customer(
            conn,
            system_id,
            password=password,
            tps=tps,
            max_binds=max_binds,
            allow_ips=ips,
            enabled=enabled,
            **_client_cert_kwargs(tls, adding=False),
        )
    click.echo(f"customer {system_id} updated")


@customer.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def customer_list(ctx: click.Context, as_json: bool) -> None:
    """List customers."""
    from smsgw.db.customers import list_customers

    with _db(ctx) as conn:
        _print_rows([c.public() for c in list_customers(conn)], as_json)


@customer.command("show")
@click.argument("system_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def customer_show(ctx: click.Context, system_id: str, as_json: bool) -> None:
    """Show one customer (never its password)."""
    from smsgw.db.customers import get_customer

    with _config_errors(), _db(ctx) as conn:
        _print_one(get_customer(conn, system_id).public(), as_json)


@customer.command("remove")
@click.argument("system_id")
@click.pass_context
def customer_remove(ctx: click.Context, system_id: str) -> None:
    """Remove customer SYSTEM_ID; its open binds are closed."""
    from smsgw.db.customers import remove_customer

    with _config_errors(), _db(ctx) as conn:
        remove_customer(conn, system_id)
    click.echo(f"customer {system_id} removed")
