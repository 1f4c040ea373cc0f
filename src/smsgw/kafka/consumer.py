"""A confluent-kafka consumer driven from an asyncio loop, with safe commits.

``consume(timeout=0)`` only hands over what librdkafka's own threads already
fetched, so calling it on the loop never blocks. When nothing is there, the
consumer waits in a blocking ``consume`` on a thread of its own, which
librdkafka wakes the moment a record lands: an idle consumer costs one wake-up
per wait, not a sleep loop on the event loop (issue 13). Rebalance callbacks
that fire during that wait are handed to the loop thread, where the worker's
state lives, and the waiting thread blocks until they ran. Commits are of
``OffsetTracker`` commit points: never past a record whose work is unfinished.

confluent-kafka (>= 2.13) lets one thread at a time into a consumer: any call
from another thread (``commit``, ``position``, ``pause``) waits until a
blocking ``consume`` returns. So while a wait is under way the loop never
calls the consumer: what it asks for then (commits, pauses) queues behind the
wait on the consumer's own thread, and the consumer calls of a rebalance
callback run on the thread that serves it. Before, a bind's commit held its
whole event loop for the rest of a 5-s wait (the broker-loss control test's
customer went 4.9 s without an answer).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from smsgw import log
from smsgw.kafka.security import client_config
from smsgw.offsets import OffsetTracker

# How long a consumer with nothing to read waits for records before ``batch``
# returns empty (the caller's loop then runs its timers: commits, expiry). A
# worker with nothing else to do passes a longer wait.
IDLE_WAIT_S = 0.1
# That longer wait: a worker with nothing due (no commit, no timer) blocks in
# librdkafka this long. A record ends the wait at once (librdkafka wakes the
# waiting thread), and so does the worker's ``wake`` event. Not longer: a close
# waits for the wait under way to end. At IDLE_WAIT_S every stage woke 10 times
# a second with nothing to do (issue 13).
LONG_WAIT_S = 2.0

# Commits the broker refused, by consumer group, in this process: a member whose
# session ran out (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID) or that was closing.
# Its partitions' next owner reads again from the last commit that held, so the
# records between are sent again: at-least-once, as after a crash (issue 10).
commits_refused: Counter[str] = Counter()
# librdkafka serves rebalance callbacks inside the waiting consume; the loop runs
# them. If the loop does not within this time (it is shutting down), they run on
# the waiting thread rather than never.
_HANDOFF_S = 30.0


def wait_consume(consumer: Consumer, max_records: int, wait_s: float) -> list[Message]:
    """Up to ``max_records`` records, waiting at most ``wait_s`` for the first one.

    librdkafka's batch consume waits for a full batch (or the timeout); waiting
    for one record and then taking what else is fetched returns at the first.
    Blocking: on a thread of the consumer's own.
    """
    first: list[Message] = consumer.consume(1, wait_s)
    if not first or max_records <= 1:
        return first
    rest: list[Message] = consumer.consume(max_records - 1, 0)
    return first + rest


# librdkafka's error event when an assignment's committed offsets were not fetched,
# and how long to wait before assigning those partitions again.
OFFSET_FETCH_FAILED = "Failed to fetch committed offsets"
REFETCH_AFTER_S = 1.0
_T = TypeVar("_T")
_static_member: dict[str, str] = {}  # "name" -> this process's member name, if any


def use_static_membership(name: str) -> None:
    """Join every consumer group of this process as the static member ``name``.

    For processes that host named workers (a Ray actor; a consumer with a
    ``client.id`` joins as ``name/client.id``, so the binds of one connector
    host are members of their own): when it restarts
    under the same name it gets its partitions back at once, instead of after
    the dead member's session timeout (KIP-345). The name must be unique per
    group, and a live process with the same name is fenced.
    """
    _static_member["name"] = name


def consumer_config(bootstrap: str, group: str, **extra: Any) -> dict[str, Any]:
    return client_config(bootstrap) | {
        "group.id": group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "session.timeout.ms": 10000,
        "heartbeat.interval.ms": 1000,
        "max.poll.interval.ms": 300000,
        # A fetch returns as soon as one record is there (fetch.min.bytes 1, or a
        # transaction's commit marker moving the last stable offset); this only
        # bounds an idle long-poll. At 10 ms each of the gateway's consumers sent
        # the broker up to 100 mostly empty fetches a second, at 100 ms 10 (issue
        # 13). Not longer: a partition newly assigned is first fetched when the
        # fetch parked at its broker returns.
        "fetch.wait.max.ms": 1000,
        "partition.assignment.strategy": "cooperative-sticky",
        **extra,
    }


class AsyncConsumer:
    def __init__(
        self,
        config: dict[str, Any],
        topics: list[str],
        *,
        on_revoke: Callable[[list[TopicPartition]], None] | None = None,
        on_assign: Callable[[list[TopicPartition]], None] | None = None,
        drain: Callable[[list[TopicPartition]], Coroutine[Any, Any, None]] | None = None,
        static_id: str | None = None,
    ) -> None:
        """``drain``: awaited on the loop when partitions are revoked, before their
        commit: the worker finishes (bounded) what it started on them, so the next
        owner does not do it again. With it, every consume runs on the waiting
        thread, so that a revoke is never served on the loop, which it waits for.

        ``static_id``: under static membership, the member's id whatever process
        runs it (a provider bind, which the supervisor may move to another node: the
        new host takes the partitions over at once, KIP-345, instead of waiting out
        the old member's session timeout)."""
        if "name" in _static_member and "group.instance.id" not in config:
            member = _static_member["name"]
            if static_id is not None:
                member = static_id
            elif "client.id" in config:  # one of several named workers of this process
                member = f"{member}/{config['client.id']}"
            config = {**config, "group.instance.id": member}
        self.consumer = Consumer(config)
        self.tracker = OffsetTracker()
        self._on_revoke = on_revoke
        self._on_assign = on_assign
        self._drain = drain
        self.assigned: set[tuple[str, int]] = set()
        self._group = str(config.get("group.id", ""))
        self.log = log.get("smsgw.consumer").bind(group=self._group)
        # Set whenever a record is done: a commit loop can sleep until there is work.
        self.progress = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._waiter: concurrent.futures.ThreadPoolExecutor | None = None
        self._waiting: concurrent.futures.Future[list[Message]] | None = None
        # Positions when the last wait began (everything before them was handed
        # over): what commit() may use while the waiting thread moves the live ones.
        self._safe_positions: list[TopicPartition] = []
        self._closing = False
        self._refetch: asyncio.TimerHandle | None = None
        # The last offset sent per partition: a commit queued behind a wait never
        # takes a partition back past a later commit (a revoke's) or one it lost.
        self._sent: dict[tuple[str, int], int] = {}
        self._sent_lock = threading.Lock()
        # Per partition revoked here, the consumer's position when it went: librdkafka
        # only moves a position forward, so after the partition comes back here its
        # position reads this stale value (past records the new assignment has not
        # read) until consumption passes it. Never taken as caught up until then.
        self._stale: dict[tuple[str, int], int] = {}
        self.consumer.subscribe(
            topics, on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._lost
        )

    def _on_loop(self, fn: Callable[[], _T]) -> _T:
        """Run ``fn`` on the loop thread (a callback served inside the waiting consume)
        and return its result; on this thread if the loop is not there to run it."""
        loop = self._loop
        if (
            loop is None
            or self._closing
            or threading.get_ident() == self._loop_thread
            or loop.is_closed()
        ):
            return fn()
        done: concurrent.futures.Future[_T] = concurrent.futures.Future()

        def run() -> None:
            if not done.set_running_or_notify_cancel():
                return  # the waiting thread gave up on the loop and ran it itself
            try:
                done.set_result(fn())
            except BaseException as exc:  # handed back to the waiting thread
                done.set_exception(exc)

        try:
            loop.call_soon_threadsafe(run)
            return done.result(_HANDOFF_S)
        except (RuntimeError, concurrent.futures.TimeoutError):
            if done.cancel():  # the loop never started it: run it here, once
                return fn()
            return done.result()

    def _assigned(self, _c: Consumer, parts: list[TopicPartition]) -> None:
        self._on_loop(lambda: self._assigned_here(parts))

    def _revoked(self, _c: Consumer, parts: list[TopicPartition]) -> None:
        """Finish what was started on the partitions (``drain``), hand over what is
        finished, then let them go.

        The commit points are the loop's (its tracker); the commit itself is made
        here, on the thread serving the callback: the loop could not get into the
        consumer while this thread is inside it.
        """
        if self._drain is not None:
            self._drain_on_loop(self._drain, parts)
        self._lost(_c, parts)

    def _lost(self, _c: Consumer, parts: list[TopicPartition]) -> None:
        """Partitions gone (lost: another member owns them already, nothing to finish)."""
        offsets = self._on_loop(lambda: self._revoked_here(parts))
        self._commit_now(offsets, asynchronous=False)
        try:  # on the thread serving the callback: the consumer's own
            positions: list[TopicPartition] = self.consumer.position(parts)
        except Exception:  # nothing read from them: no position to distrust
            return
        for tp in positions:
            if tp.offset >= 0:
                self._stale[(tp.topic, tp.partition)] = tp.offset

    def _drain_on_loop(
        self,
        drain: Callable[[list[TopicPartition]], Coroutine[Any, Any, None]],
        parts: list[TopicPartition],
    ) -> None:
        """Await ``drain(parts)`` on the loop from the thread serving the revoke, which
        holds the partitions meanwhile (the drain bounds its own time)."""
        loop = self._loop
        if threading.get_ident() == self._loop_thread:
            self.log.warning("revoke served on the loop: partitions let go undrained")
            return
        if loop is None or loop.is_closed() or not loop.is_running():
            return  # nothing started on them, or no loop left to finish it
        done = asyncio.run_coroutine_threadsafe(drain(parts), loop)
        try:
            done.result(_HANDOFF_S)
        except concurrent.futures.TimeoutError:
            done.cancel()
            self.log.warning("drain of revoked partitions timed out")
        except Exception as exc:  # the partitions go anyway: the next owner resends
            self.log.warning("drain of revoked partitions failed", error=repr(exc))

    def _assigned_here(self, parts: list[TopicPartition]) -> None:
        self.assigned |= {(p.topic, p.partition) for p in parts}
        self._forget_positions(parts)
        with self._sent_lock:
            for p in parts:
                self._sent.pop((p.topic, p.partition), None)
        if self._on_assign:
            self._on_assign(parts)

    def _revoked_here(self, parts: list[TopicPartition]) -> list[TopicPartition]:
        """On the loop: the commit points of what is finished, then forget ``parts``.

        Positions are trusted only from before a wait, or live outside one, never
        inside ``close``: librdkafka's close moves the position of a partition past
        records it had fetched and never handed over (a bind stopped with a backlog:
        a partition it had read nothing from read 327, its commit point was 5, and
        322 accepted messages were never sent). ``close`` applied the live positions
        before it let librdkafka in (``commit``).
        """
        if self._closing:
            positions: list[TopicPartition] | None = []
        else:
            positions = self._safe_positions if self._waiting is not None else None
        offsets = self._commit_offsets(positions)
        # Each revoked partition's point, also one a commit queued behind the wait
        # took already: that commit is skipped once the partition is gone, and the
        # next owner sent again what was finished since the last one made.
        moved = {(tp.topic, tp.partition) for tp in offsets}
        for p in parts:
            point = self.tracker.point(p.topic, p.partition)
            if point is not None and (p.topic, p.partition) not in moved:
                offsets.append(TopicPartition(p.topic, p.partition, point))
        for p in parts:
            self.assigned.discard((p.topic, p.partition))
            self.tracker.forget(p.topic, p.partition)
        self._forget_positions(parts)
        if self._on_revoke:
            self._on_revoke(parts)
        return offsets

    def _forget_positions(self, parts: list[TopicPartition]) -> None:
        """A partition assigned or revoked during a wait: its position from before the
        wait belongs to another assignment. Taken as caught up (no work unfinished in a
        tracker just started), it committed an offset past records the new assignment
        had not read (the last owner's unfinished ones: lost)."""
        gone = {(p.topic, p.partition) for p in parts}
        self._safe_positions = [
            tp for tp in self._safe_positions if (tp.topic, tp.partition) not in gone
        ]

    async def batch(
        self,
        max_records: int = 500,
        wait_s: float = IDLE_WAIT_S,
        wake: asyncio.Event | None = None,
    ) -> list[Message]:
        """Records fetched (tracked as read); when there are none, waits up to ``wait_s``
        for the first ones (woken by their arrival, not by a timer).

        A wait cancelled half-way keeps its records for the next call (or close):
        the consumer's position is already past them. ``wake`` set during the wait
        returns nothing at once, the wait going on for the next call: work that
        does not come through this consumer (a receiver bound) ends a long wait.
        """
        if self._waiting is None:
            if self._drain is None:  # a revoke served here needs no wait on the loop
                msgs = self.consumer.consume(max_records, 0)
                if msgs or wait_s <= 0:
                    return self.accept(msgs)
            self._begin_wait(max_records, wait_s)
        assert self._waiting is not None
        waiting = asyncio.shield(asyncio.wrap_future(self._waiting))
        if wake is not None and not self._waiting.done():
            woken = asyncio.ensure_future(wake.wait())
            try:
                await asyncio.wait((waiting, woken), return_when=asyncio.FIRST_COMPLETED)
            finally:
                woken.cancel()
            if not waiting.done():  # the next call takes this wait's records
                waiting.add_done_callback(lambda f: f.cancelled() or f.exception())
                return []
        msgs = await waiting
        self._waiting = None
        return self.accept(msgs)

    @property
    def waiting(self) -> bool:
        """A wait for records is under way (one a ``wake`` left running, say)."""
        return self._waiting is not None

    def _begin_wait(self, max_records: int, wait_s: float) -> None:
        if self._waiter is None:
            self._loop = asyncio.get_running_loop()
            self._loop_thread = threading.get_ident()
            self._waiter = concurrent.futures.ThreadPoolExecutor(1, "kafka-wait")
        before = self._safe_positions
        self._safe_positions = self._positions()
        if [(p.topic, p.partition, p.offset) for p in before] != [
            (p.topic, p.partition, p.offset) for p in self._safe_positions
        ]:
            self.progress.set()  # past a transaction marker, say: worth a commit
        self._waiting = self._waiter.submit(wait_consume, self.consumer, max_records, wait_s)

    def _positions(self) -> list[TopicPartition]:
        if not self.assigned:
            return []
        try:
            got: list[TopicPartition] = self.consumer.position(
                [TopicPartition(t, p) for t, p in sorted(self.assigned)]
            )
            return got
        except Exception:  # no position yet (rebalance); the next commit catches up
            return []

    def accept(self, msgs: list[Message]) -> list[Message]:
        """The records among `msgs` (errors logged, EOF events dropped), tracked as read.

        Not those of a partition revoked since they were fetched (a wait can take a
        record, then serve the revoke before handing it over): they are the next
        owner's. Taken, they were sent twice, and their commit, from a member that
        no longer owned the partition, could move its offset past records the owner
        had not done yet.
        """
        out = []
        stale = 0
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    self.log.warning("consumer error", error=str(err))
                if OFFSET_FETCH_FAILED in err.str():
                    self._refetch_later()
                continue
            topic, partition = m.topic() or "", m.partition() or 0
            if (topic, partition) not in self.assigned:
                stale += 1
                key = (topic, partition)  # the position moved past it (see _stale)
                self._stale[key] = max(self._stale.get(key, -1), (m.offset() or 0) + 1)
                continue
            self.tracker.read(topic, partition, m.offset() or 0)
            out.append(m)
        if stale:
            self.log.info("records of revoked partitions left to their next owner", count=stale)
        return out

    def _refetch_later(self) -> None:
        """An assignment's committed offsets could not be fetched: librdkafka leaves
        its partitions unfetched for good when the whole request failed (a
        coordinator that just died: NOT_COORDINATOR with no partitions;
        librdkafka issue 5586). In a while, the partitions nothing was read from
        are assigned again, which fetches their offsets anew."""
        if self._refetch is not None or self._closing:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on the loop (closing): the partitions go anyway
            return
        self._refetch = loop.call_later(REFETCH_AFTER_S, self._reassign_unstarted)

    def _reassign_unstarted(self) -> None:
        self._refetch = None
        parts = [
            TopicPartition(t, p) for t, p in sorted(self.assigned) if not self.tracker.started(t, p)
        ]
        if not parts or self._closing:
            return
        self.log.warning("assigned again after a failed offset fetch", partitions=len(parts))

        def reassign(parts: list[TopicPartition]) -> None:
            try:
                self.consumer.incremental_unassign(parts)
                self.consumer.incremental_assign(parts)
            except Exception as exc:  # a rebalance took them meanwhile: nothing to do
                self.log.info("could not assign again", error=str(exc))

        self._call(reassign, parts)

    def done(self, msg: Message) -> None:
        self.tracker.done(msg.topic() or "", msg.partition() or 0, msg.offset() or 0)
        self.progress.set()

    def commit(self, asynchronous: bool = True) -> None:
        """Commit what is finished; during a wait, on the consumer's thread once the
        wait is over (the loop is never held up by it)."""
        if self._waiting is not None and not self._closing:
            offsets = self._commit_offsets(self._safe_positions)
            if offsets:
                self._queue(self._commit_now, offsets, asynchronous, True)
            return
        self._commit_now(self._commit_offsets(None), asynchronous)

    def _commit_offsets(self, positions: list[TopicPartition] | None) -> list[TopicPartition]:
        """The commit points that moved; ``positions`` None: the consumer's own (no
        wait under way), else those from before the wait began."""
        # A transactionally written partition ends in a commit marker, which
        # takes an offset but is never a record: without this the group would
        # rest one short of the end, and show a lag that never drains.
        # While a wait is under way its thread moves the live position past records
        # not handed over yet: only the positions from before the wait are safe.
        here = self._positions() if positions is None else positions
        for tp in here:
            key = (tp.topic, tp.partition)
            if tp.offset < 0 or key not in self.assigned:
                continue
            stale = self._stale.get(key)
            if stale is not None:
                if tp.offset <= stale:
                    continue  # possibly the last assignment's position (see _stale)
                del self._stale[key]
            self.tracker.caught_up(tp.topic, tp.partition, tp.offset)
        return [TopicPartition(t, p, o) for (t, p), o in self.tracker.commit_points().items()]

    def _commit_now(
        self, offsets: list[TopicPartition], asynchronous: bool, owned_only: bool = False
    ) -> None:
        """Commit ``offsets`` but those behind one sent already (and, ``owned_only``,
        of partitions no longer assigned: a commit that waited for a wait)."""
        with self._sent_lock:
            offsets = [
                tp
                for tp in offsets
                if tp.offset > self._sent.get((tp.topic, tp.partition), -1)
                and (not owned_only or (tp.topic, tp.partition) in self.assigned)
            ]
            for tp in offsets:
                self._sent[(tp.topic, tp.partition)] = tp.offset
        if not offsets:
            return
        try:
            if asynchronous:
                self.consumer.commit(offsets=offsets, asynchronous=True)
            else:
                self.consumer.commit(offsets=offsets, asynchronous=False)
        except Exception as exc:  # a commit during a rebalance may fail; the next one retries
            commits_refused[self._group] += 1
            self.log.info("commit failed", error=str(exc))

    def pause(self, parts: list[TopicPartition]) -> None:
        self._call(self.consumer.pause, parts)

    def resume(self, parts: list[TopicPartition]) -> None:
        self._call(self.consumer.resume, parts)

    def _call(
        self, fn: Callable[[list[TopicPartition]], None], parts: list[TopicPartition]
    ) -> None:
        """Now, or during a wait queued behind it on the consumer's thread (in order)."""
        if self._waiting is None or self._closing or not self._queue(fn, parts):
            fn(parts)

    def _queue(self, fn: Callable[..., None], *args: Any) -> bool:
        """Run ``fn`` on the consumer's thread after the wait under way; False if
        that thread is gone (closing: the caller does it now)."""
        if self._waiter is None:
            return False
        try:
            self._waiter.submit(fn, *args)
        except RuntimeError:  # shut down by close()
            return False
        return True

    def settle(self) -> None:
        """Wait for a wait under way to end; its records count as read, never done
        (they go to the partition's next reader). Blocking: call off the loop."""
        self._closing = True
        if self._waiting is not None:
            try:
                self.accept(self._waiting.result())
            except Exception as exc:
                self.log.info("wait ended in error", error=repr(exc))
            self._waiting = None
        if self._waiter is not None:
            self._waiter.shutdown(wait=True)

    def close(self, commit: bool = True) -> None:
        self.settle()
        if commit:
            self.commit(asynchronous=False)
        self.consumer.close()
