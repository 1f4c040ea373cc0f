-- SMS providers (SMSCs) the gateway binds to as an ESME.
CREATE TABLE providers (
    id                BIGSERIAL   PRIMARY KEY,
    -- Part of Kafka topic names (out.<name>), hence the narrow alphabet.
    name              VARCHAR(32) NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9_-]{1,32}$'),
    host              TEXT        NOT NULL CHECK (host <> ''),
    port              INTEGER     NOT NULL CHECK (port BETWEEN 1 AND 65535),
    system_id         VARCHAR(15) NOT NULL CHECK (system_id <> ''),
    -- The credential WE present in bind_*: stored as given, not a hash,
    -- because we must send it to the provider. Never print it.
    password          VARCHAR(8)  NOT NULL,
    system_type       VARCHAR(12) NOT NULL DEFAULT '',
    bind_mode         TEXT        NOT NULL DEFAULT 'trx' CHECK (bind_mode IN ('trx', 'tx+rx')),
    binds             INTEGER     NOT NULL DEFAULT 1 CHECK (binds > 0),
    -- Contracted TPS for the provider as a whole (all binds on all nodes).
    tps               INTEGER     NOT NULL DEFAULT 10 CHECK (tps > 0),
    -- Outstanding submits per bind ("window" is a reserved word in SQL).
    window_size       INTEGER     NOT NULL DEFAULT 10 CHECK (window_size > 0),
    enquire_link_s    INTEGER     NOT NULL DEFAULT 30 CHECK (enquire_link_s > 0),
    -- How the provider writes message ids in submit_sm_resp and in receipts
    -- (see smsgw/provider_ids.py): the classic hex-vs-decimal mismatch.
    submit_id_format  TEXT        NOT NULL DEFAULT 'str'
                                  CHECK (submit_id_format IN ('hex', 'dec', 'str')),
    receipt_id_format TEXT        NOT NULL DEFAULT 'str'
                                  CHECK (receipt_id_format IN ('hex', 'dec', 'str')),
    enabled           BOOLEAN     NOT NULL DEFAULT TRUE,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Mobile-terminated routes: which provider carries a customer's submit_sm.
-- customer_id NULL = a route for every customer. prefix '' = catch-all.
CREATE TABLE mt_routes (
    id            BIGSERIAL   PRIMARY KEY,
    customer_id   BIGINT      REFERENCES customers (id) ON DELETE CASCADE,
    prefix        VARCHAR(20) NOT NULL DEFAULT '' CHECK (prefix ~ '^[0-9]*$'),
    source_prefix VARCHAR(20) CHECK (source_prefix ~ '^[0-9A-Za-z]+$'),
    priority      INTEGER     NOT NULL DEFAULT 0,
    -- RESTRICT: a provider that carries traffic cannot vanish under a route.
    provider_id   BIGINT      NOT NULL REFERENCES providers (id) ON DELETE RESTRICT,
    -- Ordered; arrays cannot hold foreign keys, so the code checks each id.
    failover_ids  BIGINT[]    NOT NULL DEFAULT '{}',
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- NULLs compare equal here (portable to PostgreSQL < 15): one route per
-- (customer or everyone, prefix, source prefix or any, priority).
CREATE UNIQUE INDEX mt_routes_key ON mt_routes
    (coalesce(customer_id, 0), prefix, coalesce(source_prefix, ''), priority);
CREATE INDEX mt_routes_provider ON mt_routes (provider_id);

-- Mobile-originated routes: which customer receives a deliver_sm sent to a
-- number. A full number is just a long prefix; '' = catch-all.
CREATE TABLE mo_routes (
    id          BIGSERIAL   PRIMARY KEY,
    prefix      VARCHAR(20) NOT NULL UNIQUE CHECK (prefix ~ '^[0-9]*$'),
    customer_id BIGINT      NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TRIGGER providers_notify AFTER INSERT OR UPDATE OR DELETE ON providers
    FOR EACH STATEMENT EXECUTE FUNCTION smsgw_notify_config();
CREATE TRIGGER mt_routes_notify AFTER INSERT OR UPDATE OR DELETE ON mt_routes
    FOR EACH STATEMENT EXECUTE FUNCTION smsgw_notify_config();
CREATE TRIGGER mo_routes_notify AFTER INSERT OR UPDATE OR DELETE ON mo_routes
    FOR EACH STATEMENT EXECUTE FUNCTION smsgw_notify_config();
