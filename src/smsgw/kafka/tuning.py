"""Batching and fetching per role: fewer Kafka requests per message (issue 16).

At 500 msg/s the broker spent about half a core, mostly per request rather
than per byte (docs/PROFILE.md): every producer sent a request every couple
of milliseconds with one or two records in it, and every consumer got a
fetch answered for nearly every record, including the consumers that are not
on any message's path. Each role here trades a bounded delay for fewer,
fuller requests where that delay is invisible or small:

- the customer's acceptance waits on its produce (``acks=all``, then the
  ``submit_sm_resp``), so it keeps a short linger;
- the stages' outputs (provider binds, correlator: ``sent``, ``inbound``,
  ``message-state``, ``deliver``; the listener's deliverer marks ride with the
  acceptance producer) are on the receipt path, where a few milliseconds
  per hop do not matter next to the provider's own receipt delay;
- the message history, which follows every topic but is read by people,
  lets the broker hold its fetch until it has a useful amount of data.

Left as they were, on purpose: the consumers on a message's path (router,
binds, correlator, deliverer) still get a fetch answered at the first record
(a held fetch is a delay per hop), and so do the ``message-state`` view
behind query_sm (a customer may query right after its receipt) and the
deliverer's reader of ``delivered`` marks (a partition taken over from
another node must see that node's marks at once, or a receipt could be
delivered twice).

Durability is not touched: every producer stays idempotent with
``acks=all``, and nothing is acknowledged or committed before its report.
"""

from __future__ import annotations

from typing import Any

# librdkafka: a batch leaves when linger.ms has passed since its first record,
# or when batch.num.messages / batch.size fill up, whichever comes first.
ACCEPT_LINGER_MS = 2  # submit_sm_resp p99 target at 500 msg/s: 20 ms
STAGE_LINGER_MS = 5  # two such hops on a receipt's way back: +<= 10 ms

# The message history (smsgw message show/find) is read by people, and it
# follows every topic of the data plane (~9 records per message): let the
# broker hold its fetch until 256 KiB are there or a second has passed,
# instead of answering one for nearly every produce request.
HISTORY_FETCH: dict[str, Any] = {
    "fetch.min.bytes": 256 * 1024,
    "fetch.wait.max.ms": 1000,
}
