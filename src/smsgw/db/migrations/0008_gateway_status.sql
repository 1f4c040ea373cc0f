-- The supervisor's report for `smsgw status` (one row per deployment, by topic prefix):
-- the CLI reads it here instead of joining the Ray cluster as a driver, which registered
-- a Ray job per call. `report` holds the counter totals a restarted supervisor resumes.
CREATE TABLE gateway_status (
    deployment  TEXT PRIMARY KEY,
    snapshot    JSONB NOT NULL,
    report      JSONB NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
