-- 003: data quality (issue 6): great-expectations results, per-asset KPI raw material, settings.
--
-- Written by the quality flow (pipelines/quality, `python -m pipelines.quality`); the design is
-- /work/plan/dq.md, the engineer's guide docs/sql.md. Every write is an upsert on the natural
-- key, so a replay after a crash neither loses nor repeats a row.

-- One row per expectation and validated window ('' asset: the whole window), plus, for a FAILED
-- expectation, one row per asset among the failing rows (its share: counts and examples).
-- Event suites ('events.<kind>') validate one minute of ingest time of one topic kind; table
-- suites ('table.<name>') one UTC hour of a derived table (re-validated while it fills: the
-- same key is replaced).
CREATE TABLE dq_results (
    window_start   timestamptz NOT NULL,  -- validated window [window_start, window_end)
    window_end     timestamptz NOT NULL CHECK (window_end > window_start),
    suite          text NOT NULL,         -- 'events.states', 'events.counters', ..., 'table.oee_minutes'
    expectation    text NOT NULL,         -- stable check name in the suite, e.g. 'state_in_packml_set'
    asset          text NOT NULL DEFAULT '',  -- '' = the whole window (all assets);
                                          -- else one asset's share of a FAILED expectation
    success        boolean NOT NULL,
    element_count  bigint  NOT NULL CHECK (element_count >= 0),
    unexpected_count bigint NOT NULL DEFAULT 0 CHECK (unexpected_count >= 0),
    observed_value jsonb,                 -- GX observed_value when it has one
    examples       jsonb NOT NULL DEFAULT '[]',  -- up to 5: [{"event_id":…, "asset":…, "ts":…, "value":…, "origin":…}]
    expectation_type text NOT NULL,       -- GX type, e.g. 'expect_column_values_to_be_in_set'
    kwargs         jsonb NOT NULL DEFAULT '{}',  -- the expectation's configuration (column, bounds, set)
    validated_at   timestamptz NOT NULL,
    PRIMARY KEY (suite, expectation, asset, window_start)
);
SELECT create_hypertable('dq_results', by_range('window_start', INTERVAL '1 day'));
CREATE INDEX dq_results_failed_idx ON dq_results (window_start) WHERE NOT success;

CREATE TABLE dq_asset_minutes (        -- KPI raw material, one row per asset and ingest minute
    ts             timestamptz NOT NULL,  -- minute of ingest time (window_start)
    asset          text NOT NULL,
    events         bigint NOT NULL,       -- valid events of every kind
    rejected       bigint NOT NULL,       -- messages of this asset the contract rejected (asset known)
    pv_good        bigint NOT NULL, pv_uncertain bigint NOT NULL, pv_bad bigint NOT NULL,  -- process values by OPC UA quality
    skew_s_min     double precision, skew_s_p50 double precision, skew_s_max double precision,
                                          -- ingest_ts - ts in seconds (negative: source clock ahead)
    last_ts        timestamptz,           -- newest source ts in the window
    last_ingest_ts timestamptz,           -- newest ingest ts in the window
    PRIMARY KEY (asset, ts)
);
SELECT create_hypertable('dq_asset_minutes', by_range('ts', INTERVAL '1 day'));

-- (added by the quality flow, not in the first design) The per-KIND share of dq_asset_minutes.
-- Windows are per topic kind and close at different moments, so the flow upserts one row per
-- (asset, kind, minute) here -- idempotent on replay -- and, in the same transaction, recomputes
-- the touched dq_asset_minutes rows from it: sums, min, max, newest; skew_s_p50 is the median
-- of the kinds' medians (the exact median of all events would need every sample).
CREATE TABLE dq_asset_kind_minutes (
    ts             timestamptz NOT NULL,
    asset          text NOT NULL,
    kind           text NOT NULL,         -- topic kind: states, counters, process_values, ...
    events         bigint NOT NULL CHECK (events >= 0),
    rejected       bigint NOT NULL CHECK (rejected >= 0),
    pv_good        bigint NOT NULL, pv_uncertain bigint NOT NULL, pv_bad bigint NOT NULL,
    skew_s_min     double precision, skew_s_p50 double precision, skew_s_max double precision,
    last_ts        timestamptz,
    last_ingest_ts timestamptz,
    PRIMARY KEY (asset, kind, ts)
);
SELECT create_hypertable('dq_asset_kind_minutes', by_range('ts', INTERVAL '1 day'));

CREATE TABLE dq_settings (name text PRIMARY KEY, value double precision NOT NULL,
                          description text NOT NULL);
INSERT INTO dq_settings VALUES
  ('oee_min_coverage', 0.9, 'an OEE figure whose data coverage is below this is not trustworthy');
