"""The ``smsgw`` command line: configuration commands that need only PostgreSQL.

Runtime commands (run, status, stop) are added by ``smsgw.cluster.entry``,
which knows how to start the infrastructure; this module does not.
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
    """Settings completed with the services of a running ``smsgw run``."""
    return raw_settings(ctx).with_runtime()


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
