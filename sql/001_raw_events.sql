-- 001: TimescaleDB, and one raw hypertable per event kind of the contract (asbuilt/events.py).
--
-- These tables are the raw material of the as-built record: every event as the plant said it,
-- stored once. The natural key (asset, ts, event_id) includes the time column, so the
-- historian's COPY → INSERT … ON CONFLICT DO NOTHING is idempotent: a replay stores nothing twice.
-- The database refuses values the contract forbids (CHECK constraints), whatever wrote them.

CREATE EXTENSION IF NOT EXISTS timescaledb;

-- Under the Apache license the built-in job-history retention job needs the non-Apache code:
-- it fails and retries forever. Switch it off there; where the license is `timescale` it works.
DO $$
BEGIN
    IF current_setting('timescaledb.license', true) = 'apache' THEN
        UPDATE _timescaledb_config.bgw_job SET scheduled = false
         WHERE proc_name = 'policy_job_stat_history_retention';
    END IF;
END $$;

CREATE TABLE equipment_states (
    ts           timestamptz NOT NULL,             -- OPC UA SourceTimestamp (event time)
    asset        text        NOT NULL,             -- ISA-95 path enterprise/site/area/line/cell
    event_id     uuid        NOT NULL,             -- deterministic: a replay has the same id
    state        text        NOT NULL CHECK (state IN (
                     'Stopped', 'Starting', 'Idle', 'Suspending', 'Suspended', 'Unsuspending',
                     'Execute', 'Stopping', 'Aborting', 'Aborted', 'Holding', 'Held',
                     'Unholding', 'Completing', 'Complete', 'Resetting', 'Clearing')),
    mode         text        NOT NULL,             -- PackML unit mode name (Produce, ...)
    stop_reason  text,                             -- hierarchical reason code, e.g. '100.20'
    blocked      boolean     NOT NULL DEFAULT false,
    starved      boolean     NOT NULL DEFAULT false,
    ingest_ts    timestamptz NOT NULL,
    schema_version smallint  NOT NULL,             -- contract version that wrote it
    PRIMARY KEY (asset, ts, event_id)
);
SELECT create_hypertable('equipment_states', by_range('ts', INTERVAL '1 day'));

CREATE TABLE counter_samples (
    ts           timestamptz NOT NULL,
    asset        text        NOT NULL,
    event_id     uuid        NOT NULL,
    counter      text        NOT NULL,             -- processed, defective, good, rework, ...
    value        bigint      NOT NULL CHECK (value >= 0),  -- cumulative, as the device says
    resettable   boolean     NOT NULL,
    rollover     bigint      CHECK (rollover > 0), -- wrap-around limit, when known
    ingest_ts    timestamptz NOT NULL,
    schema_version smallint  NOT NULL,             -- contract version that wrote it
    PRIMARY KEY (asset, ts, event_id)
);
SELECT create_hypertable('counter_samples', by_range('ts', INTERVAL '1 day'));

CREATE TABLE process_values (
    ts           timestamptz NOT NULL,
    asset        text        NOT NULL,
    event_id     uuid        NOT NULL,
    signal       text        NOT NULL,             -- e.g. compression_force
    value        double precision NOT NULL,
    unit         text        NOT NULL,             -- engineering unit, e.g. kN
    quality      text        NOT NULL CHECK (quality IN ('good', 'uncertain', 'bad')),
    status_code  bigint      NOT NULL,             -- raw OPC UA StatusCode (uint32)
    ingest_ts    timestamptz NOT NULL,
    schema_version smallint  NOT NULL,             -- contract version that wrote it
    PRIMARY KEY (asset, ts, event_id)
);
SELECT create_hypertable('process_values', by_range('ts', INTERVAL '1 day'));

CREATE TABLE alarms (
    ts           timestamptz NOT NULL,
    asset        text        NOT NULL,
    event_id     uuid        NOT NULL,
    alarm        text        NOT NULL,             -- condition name or id
    severity     integer     NOT NULL CHECK (severity BETWEEN 1 AND 1000),  -- OPC UA range
    message      text        NOT NULL,
    active       boolean     NOT NULL,
    acked        boolean     NOT NULL,
    ingest_ts    timestamptz NOT NULL,
    schema_version smallint  NOT NULL,             -- contract version that wrote it
    PRIMARY KEY (asset, ts, event_id)
);
SELECT create_hypertable('alarms', by_range('ts', INTERVAL '7 days'));

CREATE TABLE batch_events (
    ts             timestamptz NOT NULL,
    asset          text        NOT NULL,           -- the unit the batch runs on
    event_id       uuid        NOT NULL,
    batch_id       text        NOT NULL,
    recipe_id      text        NOT NULL,
    recipe_version text        NOT NULL,
    procedure      text        NOT NULL,           -- ISA-88 procedural model
    unit_procedure text,
    operation      text,
    phase          text,
    transition     text        NOT NULL,           -- started, held, restarted, completed, ...
    parameters     jsonb,                          -- phase parameters as reported
    ingest_ts      timestamptz NOT NULL,
    schema_version smallint    NOT NULL,
    PRIMARY KEY (asset, ts, event_id)
);
SELECT create_hypertable('batch_events', by_range('ts', INTERVAL '7 days'));
CREATE INDEX batch_events_batch_idx ON batch_events (batch_id, ts);

CREATE TABLE material_movements (
    ts           timestamptz NOT NULL,
    asset        text        NOT NULL,
    event_id     uuid        NOT NULL,
    direction    text        NOT NULL CHECK (direction IN ('consumed', 'produced')),
    lot          text        NOT NULL,
    material     text        NOT NULL,
    quantity     double precision NOT NULL CHECK (quantity > 0),
    unit         text        NOT NULL,
    batch_id     text,
    ingest_ts    timestamptz NOT NULL,
    schema_version smallint  NOT NULL,             -- contract version that wrote it
    PRIMARY KEY (asset, ts, event_id)
);
SELECT create_hypertable('material_movements', by_range('ts', INTERVAL '7 days'));
CREATE INDEX material_movements_lot_idx ON material_movements (lot, ts);
CREATE INDEX material_movements_batch_idx ON material_movements (batch_id, ts);

-- Bad input is data: what could not be decoded or validated, with why and from where.
CREATE TABLE dead_letters (
    received_ts  timestamptz NOT NULL,
    event_id     uuid        NOT NULL,             -- deterministic from origin and payload
    origin       text        NOT NULL,             -- topic[partition]@offset, OPC UA node id, ...
    reason       text        NOT NULL,
    payload      text        NOT NULL,             -- raw bytes as UTF-8, \xNN where not UTF-8
    payload_size integer     NOT NULL CHECK (payload_size >= 0),  -- raw size in bytes
    payload_truncated boolean NOT NULL DEFAULT false,  -- payload cut at 64 KiB
    schema_version smallint  NOT NULL,
    PRIMARY KEY (received_ts, event_id)
);
SELECT create_hypertable('dead_letters', by_range('received_ts', INTERVAL '7 days'));
