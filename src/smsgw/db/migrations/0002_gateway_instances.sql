-- Each gateway process leases an instance number at start; it becomes part of
-- every message id it issues (see smsgw/msgid.py), so ids never collide across
-- nodes and restarts.
CREATE SEQUENCE gateway_instance_seq MINVALUE 0 MAXVALUE 4095 START 0 CYCLE;

CREATE TABLE gateway_instances (
    instance   INTEGER     NOT NULL,
    node       TEXT        NOT NULL,
    pid        INTEGER     NOT NULL,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
