-- Customers (ESMEs) that bind to the gateway over SMPP.
CREATE TABLE customers (
    id            BIGSERIAL PRIMARY KEY,
    system_id     VARCHAR(16) NOT NULL UNIQUE,
    password_hash TEXT        NOT NULL,
    enabled       BOOLEAN     NOT NULL DEFAULT TRUE,
    max_binds     INTEGER     NOT NULL DEFAULT 4 CHECK (max_binds > 0),
    tps           INTEGER     NOT NULL DEFAULT 100 CHECK (tps > 0),
    allow_ips     CIDR[]      NOT NULL DEFAULT '{}',
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Every change to configuration is announced so running gateways reload it.
CREATE FUNCTION smsgw_notify_config() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('smsgw_config', TG_TABLE_NAME);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER customers_notify AFTER INSERT OR UPDATE OR DELETE ON customers
    FOR EACH STATEMENT EXECUTE FUNCTION smsgw_notify_config();
