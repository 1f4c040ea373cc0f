"""``smsgw dlq``: see and act on the records the stages set aside as undecodable.

Registered on ``smsgw.cli.main`` when imported (``smsgw.cluster.entry`` does,
since these commands need the running gateway's Kafka). A dead letter is
numbered by its offset in the one-partition ``<prefix>dlq`` topic; ``replay``
and ``drop`` end it with a tombstone on its key, so ``list`` shows what is
still to be looked at.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import click
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from smsgw.cli import load_settings, main
from smsgw.kafka.consumer import consumer_config
from smsgw.kafka.dlq import H, produce_sync, raw_headers
from smsgw.kafka.producer import producer_config
from smsgw.settings import Settings
from smsgw.topics import Topics


@dataclass
class DeadLetter:
    number: int  # offset in the dlq topic
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes | None]]

    def meta(self, name: str) -> str:
        for k, v in self.headers:
            if k == H + name:
                return (v or b"").decode("utf-8", "replace")
        return ""

    @property
    def source_key(self) -> bytes | None:
        for k, v in self.headers:
            if k == H + "key":
                return v or b""
        return None

    @property
    def source_headers(self) -> list[tuple[str, bytes | None]]:
        return [(k, v) for k, v in self.headers if not k.startswith(H)]

    def row(self) -> dict[str, Any]:
        return {
            "n": self.number,
            "stage": self.meta("stage"),
            "topic": self.meta("topic"),
            "partition": int(self.meta("partition") or 0),
            "offset": int(self.meta("offset") or 0),
            "reason": self.meta("reason"),
            "at": float(self.meta("at") or 0),
            "bytes": len(self.value),
        }

    def detail(self) -> dict[str, Any]:
        key = self.source_key
        return {
            **self.row(),
            "key": None if key is None else _text(key),
            "value": _text(self.value),
            "value_hex": self.value.hex(),
            "headers": {k: _text(v or b"") for k, v in self.source_headers},
        }


def _text(b: bytes) -> str:
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return "hex:" + b.hex()


def _bootstrap(settings: Settings) -> str:
    if not settings.kafka_bootstrap:
        raise click.ClickException(
            "no Kafka: start the gateway with `smsgw run`, or set SMSGW_KAFKA_BOOTSTRAP"
        )
    return settings.kafka_bootstrap


def read_dead_letters(bootstrap: str, topics: Topics, timeout: float = 15.0) -> list[DeadLetter]:
    """Every dead letter not yet replayed or dropped, oldest first."""
    consumer = Consumer(
        consumer_config(
            bootstrap,
            f"{topics.prefix}dlq-cli-{uuid.uuid4().hex[:8]}",
            **{"enable.partition.eof": True},
        )
    )
    try:
        tp = TopicPartition(topics.dlq, 0)
        low, high = consumer.get_watermark_offsets(tp, timeout=timeout, cached=False)
        live: dict[bytes, DeadLetter] = {}
        if high <= low:
            return []
        consumer.assign([TopicPartition(topics.dlq, 0, OFFSET_BEGINNING)])
        position = low
        while position < high:
            msg = consumer.poll(timeout)
            if msg is None:
                raise click.ClickException(f"{topics.dlq} not read to its end in {timeout:.0f} s")
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    break
                raise click.ClickException(str(err))
            position = (msg.offset() or 0) + 1
            key = msg.key() or b""
            live.pop(key, None)  # a newer one (or a tombstone) replaces it
            value = msg.value()
            if value is not None:
                live[key] = DeadLetter(msg.offset() or 0, key, value, raw_headers(msg))
        return sorted(live.values(), key=lambda d: d.number)
    finally:
        consumer.close()


def _find(bootstrap: str, topics: Topics, number: int) -> DeadLetter:
    for d in read_dead_letters(bootstrap, topics):
        if d.number == number:
            return d
    raise click.ClickException(f"no dead letter {number} (never, or replayed or dropped)")


def _producer(bootstrap: str) -> Producer:
    return Producer(producer_config(bootstrap, timeout_s=10, extra={"linger.ms": 0}))


@main.group()
def dlq() -> None:
    """Records set aside because a stage could not decode them."""


@dlq.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def dlq_list(ctx: click.Context, as_json: bool) -> None:
    """Every dead letter still to be looked at: where it came from and why."""
    s = load_settings(ctx)
    rows = [d.row() for d in read_dead_letters(_bootstrap(s), Topics(s.topic_prefix))]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no dead letters")
        return
    for r in rows:
        click.echo(
            f"{r['n']:>6}  {r['topic']}[{r['partition']}]@{r['offset']}  "
            f"{r['stage']}  {r['bytes']} B  {r['reason']}"
        )


@dlq.command("show")
@click.argument("number", type=int)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def dlq_show(ctx: click.Context, number: int, as_json: bool) -> None:
    """One dead letter with its raw key, value and headers."""
    s = load_settings(ctx)
    d = _find(_bootstrap(s), Topics(s.topic_prefix), number).detail()
    if as_json:
        click.echo(json.dumps(d, indent=2))
        return
    for k, v in d.items():
        click.echo(f"{k:>10}: {v}")


@dlq.command("replay")
@click.argument("number", type=int)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def dlq_replay(ctx: click.Context, number: int, as_json: bool) -> None:
    """Produce the raw record back to its source topic and partition (once fixed upstream)."""
    s = load_settings(ctx)
    bootstrap, topics = _bootstrap(s), Topics(s.topic_prefix)
    d = _find(bootstrap, topics, number)
    row = d.row()
    producer = _producer(bootstrap)
    try:
        produce_sync(
            producer,
            row["topic"],
            d.source_key,
            d.value,
            list(d.source_headers),
            partition=row["partition"],
        )
        produce_sync(producer, topics.dlq, d.key, None, [])
    except Exception as exc:
        raise click.ClickException(f"replay failed: {exc}") from exc
    out = {"n": number, "replayed_to": row["topic"], "partition": row["partition"]}
    click.echo(json.dumps(out) if as_json else f"{number}: replayed to {row['topic']}")


@dlq.command("drop")
@click.argument("number", type=int)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def dlq_drop(ctx: click.Context, number: int, as_json: bool) -> None:
    """Forget a dead letter (its source record stays where it was)."""
    s = load_settings(ctx)
    bootstrap, topics = _bootstrap(s), Topics(s.topic_prefix)
    d = _find(bootstrap, topics, number)
    try:
        produce_sync(_producer(bootstrap), topics.dlq, d.key, None, [])
    except Exception as exc:
        raise click.ClickException(f"drop failed: {exc}") from exc
    click.echo(json.dumps({"n": number, "dropped": True}) if as_json else f"{number}: dropped")
