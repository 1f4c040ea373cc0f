"""`smsgw provider|route|mo-route` against the real PostgreSQL, end to end."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

import smsgw.cli_routing  # noqa: F401  (registers the commands on main)
from smsgw.cli import main
from smsgw.db.providers import load_providers
from smsgw.db.routes import load_mo_routes, load_mt_routes
from smsgw.routing import MoRoutingTable, RoutingTable
from smsgw.sealing import Sealer

pytestmark = pytest.mark.integration

PASSWORD = "Pw7#xq9z"


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The CLI keeps the key sealing provider passwords here, not in the real home."""
    monkeypatch.setenv("SMSGW_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture(autouse=True)
def _kafka(bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`provider remove` checks the provider's queue on Kafka (a prefix of this test's own)."""
    monkeypatch.setenv("SMSGW_KAFKA_BOOTSTRAP", bootstrap)
    monkeypatch.setenv("SMSGW_TOPIC_PREFIX", f"cli{uuid.uuid4().hex[:8]}.")


def cli(db_url: str, *args: str, ok: bool = True) -> str:
    result = CliRunner().invoke(main, ["--database-url", db_url, *args])
    if ok:
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code == 1, result.output
        assert result.output.startswith("Error: "), result.output
    return result.output


def add_provider(db_url: str, name: str, *extra: str) -> None:
    cli(
        db_url, "provider", "add", name, "--host", "smsc.example", "--port", "2775",
        "--system-id", "gw01", "--password", PASSWORD, *extra,
    )  # fmt: skip


def add_customer(db_url: str, system_id: str) -> None:
    cli(db_url, "customer", "add", system_id, "--password", "secret1")


def test_provider_add_show_list_never_print_password(db_url: str) -> None:
    add_provider(db_url, "acme-uk", "--binds", "2", "--tps", "50", "--submit-id-format", "hex")
    shown = json.loads(cli(db_url, "provider", "show", "acme-uk", "--json"))
    assert shown["binds"] == 2 and shown["tps"] == 50 and shown["window"] == 10
    assert shown["submit_id_format"] == "hex" and shown["receipt_id_format"] == "str"
    assert shown["bind_mode"] == "trx" and shown["enabled"] is True
    assert shown["segmentation"] == "keep"
    listed = cli(db_url, "provider", "list")
    as_json = cli(db_url, "provider", "list", "--json")
    for out in (json.dumps(shown), listed, as_json):
        assert PASSWORD not in out and "password" not in out
    # Nor does the database hold it (issue 11): only a token for the key in $SMSGW_HOME.
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT password FROM providers WHERE name = 'acme-uk'").fetchone()
    assert row is not None and row[0].startswith("fernet:") and PASSWORD not in row[0]
    assert [p["name"] for p in json.loads(as_json)] == ["acme-uk"]
    assert "acme-uk" in listed and "smsc.example" in listed


def test_provider_duplicate_and_bad_settings_refused(db_url: str) -> None:
    add_provider(db_url, "acme")
    out = cli(db_url, "provider", "add", "acme", "--host", "h", "--port", "1",
              "--system-id", "s", "--password", "p", ok=False)  # fmt: skip
    assert "provider 'acme' exists already; use `provider update`" in out
    bad = [
        (["Bad.Name"], "lowercase letters"),
        (["ok", "--port", "70000"], "--port 70000"),
        (["ok", "--password", "ninechars"], "--password: SMPP allows at most 8"),
        (["ok", "--tps", "0"], "--tps must be a positive number"),
        (["ok", "--host", "bad host"], "--host 'bad host'"),
    ]
    for args, message in bad:
        name, *opts = args
        base = {"--host": "h", "--port": "2775", "--system-id": "s", "--password": "p"}
        for flag, value in zip(opts[::2], opts[1::2], strict=True):
            base[flag] = value
        flat = [x for kv in base.items() for x in kv]
        out = cli(db_url, "provider", "add", name, *flat, ok=False)
        assert message in out, out


def test_provider_update_and_unknown(db_url: str) -> None:
    add_provider(db_url, "acme")
    cli(db_url, "provider", "update", "acme", "--tps", "80", "--disable", "--bind-mode", "tx+rx")
    cli(db_url, "provider", "update", "acme", "--segmentation", "sar")
    shown = json.loads(cli(db_url, "provider", "show", "acme", "--json"))
    assert (shown["tps"], shown["enabled"], shown["bind_mode"]) == (80, False, "tx+rx")
    assert shown["segmentation"] == "sar"
    bad = CliRunner().invoke(main, ["--database-url", db_url, "provider", "update", "acme",
                                    "--segmentation", "udh7"])  # fmt: skip
    assert (
        bad.exit_code == 2 and "'udh7' is not one of 'keep', 'udh8', 'udh16', 'sar'" in bad.output
    )
    assert "nothing to change" in cli(db_url, "provider", "update", "acme", ok=False)


def test_provider_message_fate_settings(db_url: str) -> None:
    add_provider(db_url, "acme")
    shown = json.loads(cli(db_url, "provider", "show", "acme", "--json"))
    assert (shown["message_ttl_s"], shown["max_pdu_octets"], shown["max_unknown_attempts"]) == (
        0,
        65536,
        3,
    ), "defaults: the gateway's TTL, 64 KiB, 3 attempts"
    cli(db_url, "provider", "update", "acme", "--message-ttl", "600", "--max-pdu-octets",
        "4096", "--max-unknown-attempts", "5")  # fmt: skip
    shown = json.loads(cli(db_url, "provider", "show", "acme", "--json"))
    assert (shown["message_ttl_s"], shown["max_pdu_octets"], shown["max_unknown_attempts"]) == (
        600,
        4096,
        5,
    )
    for flag, value in (("--max-pdu-octets", "10"), ("--max-unknown-attempts", "0"),
                        ("--message-ttl", "-1")):  # fmt: skip
        bad = CliRunner().invoke(
            main, ["--database-url", db_url, "provider", "update", "acme", flag, value]
        )
        assert bad.exit_code == 2 and flag in bad.output, bad.output
    out = cli(db_url, "provider", "update", "nope", "--tps", "5", ok=False)
    assert "no provider 'nope'; `smsgw provider list` shows them" in out
    assert "no provider 'nope'" in cli(db_url, "provider", "remove", "nope", ok=False)


def test_route_validation_messages(db_url: str) -> None:
    add_provider(db_url, "acme")
    add_provider(db_url, "backup")
    out = cli(db_url, "route", "add", "--prefix", "44", "--provider", "ghost", ok=False)
    assert "unknown provider(s) 'ghost'" in out and "provider add" in out
    out = cli(db_url, "route", "add", "--prefix", "44a", "--provider", "acme", ok=False)
    assert "--prefix '44a': use up to 20 digits" in out
    out = cli(db_url, "route", "add", "--prefix", "0" * 21, "--provider", "acme", ok=False)
    assert "up to 20 digits" in out
    out = cli(db_url, "route", "add", "--prefix", "44", "--provider", "acme",
              "--failover", "backup,acme", ok=False)  # fmt: skip
    assert "--failover names the primary provider 'acme'" in out
    out = cli(db_url, "route", "add", "--prefix", "44", "--provider", "acme",
              "--failover", "backup,ghost2", ok=False)  # fmt: skip
    assert "unknown provider(s) 'ghost2'" in out
    out = cli(db_url, "route", "add", "--prefix", "44", "--provider", "acme",
              "--customer", "nobody", ok=False)  # fmt: skip
    assert "no customer 'nobody'" in out
    out = cli(db_url, "route", "add", "--prefix", "44", "--provider", "acme",
              "--source-prefix", "A-B", ok=False)  # fmt: skip
    assert "--source-prefix 'A-B'" in out
    assert "no route 99" in cli(db_url, "route", "show", "99", ok=False)
    assert "no route 99" in cli(db_url, "route", "remove", "99", ok=False)
    assert cli(db_url, "route", "list") == "(none)\n"


def test_routes_add_list_show_update_and_duplicates(db_url: str) -> None:
    add_provider(db_url, "acme")
    add_provider(db_url, "backup")
    add_provider(db_url, "third")
    add_customer(db_url, "shop")
    assert cli(db_url, "route", "add", "--prefix", "", "--provider", "acme") == "route 1 added\n"
    cli(db_url, "route", "add", "--prefix", "+4479", "--provider", "acme",
        "--failover", "third,backup")  # fmt: skip
    cli(db_url, "route", "add", "--prefix", "44", "--provider", "backup",
        "--customer", "shop", "--source-prefix", "BANK", "--priority", "5")  # fmt: skip
    out = cli(db_url, "route", "add", "--prefix", "4479", "--provider", "backup", ok=False)
    assert "route 2 already covers customer (all), prefix 4479, source (any), priority 0" in out
    cli(db_url, "route", "add", "--prefix", "4479", "--provider", "backup", "--priority", "1")

    routes = json.loads(cli(db_url, "route", "list", "--json"))
    assert [(r["id"], r["prefix"], r["customer"], r["provider"]) for r in routes] == [
        (1, "", None, "acme"),
        (3, "44", "shop", "backup"),
        (4, "4479", None, "backup"),
        (2, "4479", None, "acme"),
    ]
    shown = json.loads(cli(db_url, "route", "show", "2", "--json"))
    assert shown["prefix"] == "4479" and shown["failover"] == ["third", "backup"]
    table = cli(db_url, "route", "list")
    assert "(all)" in table and "(any)" in table and "BANK" in table and "third,backup" in table

    cli(db_url, "route", "update", "2", "--provider", "backup", "--failover", "acme")
    shown = json.loads(cli(db_url, "route", "show", "2", "--json"))
    assert (shown["provider"], shown["failover"]) == ("backup", ["acme"])
    out = cli(db_url, "route", "update", "2", "--failover", "backup", ok=False)
    assert "names the primary provider 'backup'" in out
    out = cli(db_url, "route", "update", "2", "--priority", "1", ok=False)
    assert "another route already has priority 1" in out
    cli(db_url, "route", "update", "2", "--failover", "")
    assert json.loads(cli(db_url, "route", "show", "2", "--json"))["failover"] == []
    cli(db_url, "route", "remove", "4")
    assert "no route 4" in cli(db_url, "route", "show", "4", ok=False)


def test_provider_in_use_cannot_be_removed(db_url: str) -> None:
    add_provider(db_url, "acme")
    add_provider(db_url, "backup")
    cli(db_url, "route", "add", "--prefix", "44", "--provider", "acme")
    cli(db_url, "route", "add", "--prefix", "33", "--provider", "acme", "--failover", "backup")
    out = cli(db_url, "provider", "remove", "acme", ok=False)
    assert "provider 'acme' is used by route(s) 1 (prefix 44, primary), 2 (prefix 33" in out
    out = cli(db_url, "provider", "remove", "backup", ok=False)
    assert "route(s) 2 (prefix 33, failover)" in out
    cli(db_url, "route", "remove", "2")
    cli(db_url, "provider", "remove", "backup")
    cli(db_url, "route", "remove", "1")
    cli(db_url, "provider", "remove", "acme")
    assert cli(db_url, "provider", "list") == "(none)\n"


def test_mo_routes(db_url: str) -> None:
    out = cli(db_url, "mo-route", "add", "--prefix", "4477009", "--customer", "ghost", ok=False)
    assert "no customer 'ghost'; `smsgw customer list` shows them" in out
    add_customer(db_url, "shop")
    add_customer(db_url, "bank")
    cli(db_url, "mo-route", "add", "--prefix", "4477009", "--customer", "bank")
    cli(db_url, "mo-route", "add", "--prefix", "+447700900123", "--customer", "shop")
    out = cli(db_url, "mo-route", "add", "--prefix", "4477009", "--customer", "shop", ok=False)
    assert "MO prefix 4477009 already goes to customer 'bank' (mo-route 1)" in out
    out = cli(db_url, "mo-route", "add", "--prefix", "44x", "--customer", "shop", ok=False)
    assert "--prefix '44x'" in out
    listed = json.loads(cli(db_url, "mo-route", "list", "--json"))
    assert listed == [
        {"id": 1, "prefix": "4477009", "customer": "bank"},
        {"id": 2, "prefix": "447700900123", "customer": "shop"},
    ]
    cli(db_url, "mo-route", "update", "1", "--customer", "shop")
    assert json.loads(cli(db_url, "mo-route", "show", "1", "--json"))["customer"] == "shop"
    cli(db_url, "mo-route", "remove", "2")
    assert "no mo-route 2" in cli(db_url, "mo-route", "show", "2", ok=False)


def test_every_table_change_is_notified(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as listener:
        listener.execute("LISTEN smsgw_config")
        add_customer(db_url, "shop")
        add_provider(db_url, "acme")
        cli(db_url, "provider", "update", "acme", "--tps", "20")
        cli(db_url, "route", "add", "--prefix", "44", "--provider", "acme")
        cli(db_url, "route", "update", "1", "--priority", "3")
        cli(db_url, "mo-route", "add", "--prefix", "4477", "--customer", "shop")
        cli(db_url, "mo-route", "update", "1", "--customer", "shop")
        cli(db_url, "mo-route", "remove", "1")
        cli(db_url, "route", "remove", "1")
        cli(db_url, "provider", "remove", "acme")
        notes = list(listener.notifies(timeout=5, stop_after=10))
    assert [(n.channel, n.payload) for n in notes] == [
        ("smsgw_config", table)
        for table in (
            "customers",
            "providers",
            "providers",
            "mt_routes",
            "mt_routes",
            "mo_routes",
            "mo_routes",
            "mo_routes",
            "mt_routes",
            "providers",
        )
    ]


async def test_loaders_feed_the_routing_tables(db_url: str, home: Path) -> None:
    add_customer(db_url, "shop")
    add_provider(db_url, "acme", "--receipt-id-format", "dec")
    add_provider(db_url, "backup", "--disabled")
    cli(db_url, "route", "add", "--prefix", "", "--provider", "backup")
    cli(db_url, "route", "add", "--prefix", "44", "--provider", "acme", "--failover", "backup",
        "--customer", "shop")  # fmt: skip
    cli(db_url, "mo-route", "add", "--prefix", "4477", "--customer", "shop")
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        providers = await load_providers(conn, Sealer.for_home(home))
        mt = await load_mt_routes(conn)
        mo = await load_mo_routes(conn)
    assert providers["acme"].password == PASSWORD
    assert PASSWORD not in repr(providers["acme"])
    assert providers["acme"].receipt_id_format == "dec"
    assert providers["backup"].enabled is False
    found = RoutingTable(mt).route("shop", "123", "+447700900123")
    assert found is not None
    assert (found.provider, found.customer, found.failover) == ("acme", "shop", ("backup",))
    other = RoutingTable(mt).route("other", "123", "447700900123")
    assert other is not None and other.provider == "backup"
    mo_found = MoRoutingTable(mo).route("447700900123")
    assert mo_found is not None and mo_found.customer == "shop"


def test_customer_in_use_cannot_be_removed(db_url: str) -> None:
    """It used to delete the customer's routes with it, silently (ON DELETE CASCADE)."""
    add_provider(db_url, "acme")
    add_customer(db_url, "shop")
    cli(db_url, "route", "add", "--prefix", "44", "--provider", "acme", "--customer", "shop")
    cli(db_url, "mo-route", "add", "--prefix", "4477009", "--customer", "shop")
    out = cli(db_url, "customer", "remove", "shop", ok=False)
    assert "customer 'shop' is used by route(s) 1 (`smsgw route remove ID`)" in out
    assert "mo-route(s) 1 (`smsgw mo-route remove ID`)" in out
    assert "--disable" in out
    assert len(json.loads(cli(db_url, "route", "list", "--json"))) == 1, "routes kept"
    cli(db_url, "route", "remove", "1")
    cli(db_url, "mo-route", "remove", "1")
    assert cli(db_url, "customer", "remove", "shop") == "customer shop removed\n"
    assert "no customer 'shop'" in cli(db_url, "customer", "remove", "shop", ok=False)


def test_every_show_reads_as_text_or_json_and_provider_list_fits_100_columns(
    db_url: str,
) -> None:
    add_provider(db_url, "a-provider-with-a-long-name", "--submit-id-format", "hex")
    add_customer(db_url, "shop")
    cli(db_url, "route", "add", "--prefix", "44", "--provider", "a-provider-with-a-long-name")
    cli(db_url, "mo-route", "add", "--prefix", "4477009", "--customer", "shop")
    for what, key in (
        (("customer", "show", "shop"), "system_id"),
        (("provider", "show", "a-provider-with-a-long-name"), "host"),
        (("route", "show", "1"), "prefix"),
        (("mo-route", "show", "1"), "customer"),
    ):
        assert key in json.loads(cli(db_url, *what, "--json")), what
        text = cli(db_url, *what)
        assert text.splitlines()[0].split()[0] == "id", text
    listed = cli(db_url, "provider", "list")
    assert max(len(line) for line in listed.splitlines()) <= 100, listed
    assert "smsc.example:2775" in listed and "hex/str" in listed


def test_tls_settings_of_customers_and_providers(db_url: str, home: Path) -> None:
    import trustme

    from smsgw.tls import file_fingerprint

    ca = trustme.CA()
    cert, ca_file = home / "client.pem", home / "ca.pem"
    ca.issue_cert("acme", common_name="acme").cert_chain_pems[0].write_to_path(str(cert))
    ca.cert_pem.write_to_path(str(ca_file))
    cli(db_url, "customer", "add", "acme", "--password", "pw", "--require-client-cert",
        "--client-cert", str(cert), "--tls-client-ca", str(ca_file))  # fmt: skip
    shown = json.loads(cli(db_url, "customer", "show", "acme", "--json"))
    assert shown["require_client_cert"] is True
    assert shown["client_cert_sha256"] == file_fingerprint(cert)
    assert shown["client_ca"] and "-----BEGIN" not in json.dumps(shown)
    out = cli(db_url, "customer", "add", "b", "--password", "pw", "--client-cert-cn", "x", ok=False)
    assert "--require-client-cert" in out
    cli(db_url, "customer", "update", "acme", "--client-cert-cn", "acme")  # a pin keeps it on
    assert json.loads(cli(db_url, "customer", "show", "acme", "--json"))["client_cert_cn"] == "acme"
    cli(db_url, "customer", "update", "acme", "--no-require-client-cert")
    shown = json.loads(cli(db_url, "customer", "show", "acme", "--json"))
    assert shown["require_client_cert"] is False
    assert shown["client_cert_sha256"] is None and shown["client_ca"] is None

    add_provider(db_url, "secure", "--tls", "--tls-ca", str(ca_file), "--no-verify-hostname")
    shown = json.loads(cli(db_url, "provider", "show", "secure", "--json"))
    assert (shown["tls"], shown["tls_ca_file"], shown["tls_verify_hostname"]) == (
        True,
        str(ca_file),
        False,
    )
    cli(db_url, "provider", "update", "secure", "--verify-hostname")
    assert (
        json.loads(cli(db_url, "provider", "show", "secure", "--json"))["tls_verify_hostname"]
        is True
    )
    add_provider(db_url, "plain")
    shown = json.loads(cli(db_url, "provider", "show", "plain", "--json"))
    assert (shown["tls"], shown["tls_verify_hostname"]) == (False, True), "defaults"
