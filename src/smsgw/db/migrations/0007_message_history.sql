-- Each message's history for `smsgw message show|find`: one row per event read from the
-- data-plane topics (accepted, routed, sent, state, receipt, deliver, delivered). Written
-- in batches by the history stage, never on the acceptance path. Partitioned by day so
-- retention is a DROP of whole partitions (the history stage creates and drops them).
CREATE TABLE message_event (
    at          TIMESTAMPTZ NOT NULL,
    message_id  TEXT NOT NULL,            -- gateway id; '' for rows known only by ref
    kind        TEXT NOT NULL,
    customer    TEXT NOT NULL DEFAULT '',
    provider    TEXT NOT NULL DEFAULT '',
    ref         TEXT NOT NULL DEFAULT '', -- provider key (sent, receipt) or delivery id
    state       SMALLINT NOT NULL DEFAULT 0,
    error       INTEGER NOT NULL DEFAULT 0,
    detail      JSONB NOT NULL DEFAULT '{}',
    src         TEXT NOT NULL,            -- topic:partition:offset[:n]: a replay adds nothing
    UNIQUE (src, at)
) PARTITION BY RANGE (at);
CREATE INDEX message_event_id ON message_event (message_id) WHERE message_id <> '';
CREATE INDEX message_event_ref ON message_event (ref) WHERE ref <> '';
CREATE INDEX message_event_customer ON message_event (customer, at) WHERE customer <> '';
