-- 002: the tables the pipelines write (issue 4): master data, OEE minutes and their roll-ups,
-- downtime events, alerts, and the Kafka source of dead letters.
--
-- The contract is /work/plan/schema.md, documented for engineers in docs/sql.md. Views and
-- functions live in sql/repeatable/ (re-applied on every migrate). The database refuses bad data
-- whatever wrote it: time accounting closure, negative seconds or counts, unknown categories and
-- losses, overlapping shifts (EXCLUDE … USING gist, which needs btree_gist for `site WITH =`).

CREATE EXTENSION IF NOT EXISTS btree_gist;

-- --- master data (upserted by the flows at start from the plant model) -----------------------

CREATE TABLE assets (
    asset         text PRIMARY KEY,                -- ISA-95 path enterprise/site/area/line/cell
    site          text NOT NULL,                   -- enterprise/site
    area          text,                            -- enterprise/site/area
    line          text,                            -- enterprise/site/area/line (work centre)
    ideal_cycle_s double precision CHECK (ideal_cycle_s > 0),  -- PRU: seconds per unit
    count_unit    text,
    timezone      text NOT NULL                    -- plant-local IANA zone: the local day
                  CHECK ((timestamptz '2000-01-01 00:00+00' AT TIME ZONE timezone) IS NOT NULL),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX assets_line_idx ON assets (line);
CREATE INDEX assets_site_idx ON assets (site);

-- One row per shift instance. A shift lasts at most 24 h (the roll-up refresh relies on it) and
-- its breaks lie inside it. Two shifts of one site never overlap: the database refuses it.
CREATE TABLE shifts (
    site     text        NOT NULL,
    shift    text        NOT NULL,
    start_ts timestamptz NOT NULL,
    end_ts   timestamptz NOT NULL,
    breaks   tstzmultirange NOT NULL DEFAULT '{}',
    CHECK (end_ts > start_ts),
    CHECK (end_ts <= start_ts + interval '24 hours'),
    CHECK (breaks <@ tstzmultirange(tstzrange(start_ts, end_ts))),
    PRIMARY KEY (site, start_ts),
    CONSTRAINT shifts_no_overlap
        EXCLUDE USING gist (site WITH =, tstzrange(start_ts, end_ts) WITH &&)
);

CREATE TABLE oee_conventions (
    name                       text PRIMARY KEY,
    description                text    NOT NULL,
    setup_is_availability_loss boolean NOT NULL,
    planned_downtime_in_base   boolean NOT NULL,
    minor_stops_in_performance boolean NOT NULL
);
INSERT INTO oee_conventions VALUES
    ('iso22400', 'ISO 22400-2: availability = APT / PBT; setup (AUST) and minor stops (ADET) '
                 'are availability losses; planned downtime is outside PBT.',
     true, false, false),
    ('oee.com', 'Vorne / oee.com (TPM): planned production time = PBT; setup and breakdowns are '
                'availability losses; minor stops are performance losses (inside run time).',
     true, false, true);

-- --- OEE ---------------------------------------------------------------------------------------

-- One asset's minute [ts, ts + 60 s): seconds per time category (exactly one category per
-- second: they sum to 60) and the counts of the minute. Written by the OEE flow (upsert).
CREATE TABLE oee_minutes (
    ts                 timestamptz NOT NULL CHECK (time_bucket('1 minute', ts) = ts),
    asset              text        NOT NULL,
    production_s       double precision NOT NULL CHECK (production_s >= 0),
    setup_s            double precision NOT NULL CHECK (setup_s >= 0),
    breakdown_s        double precision NOT NULL CHECK (breakdown_s >= 0),
    minor_stop_s       double precision NOT NULL CHECK (minor_stop_s >= 0),
    external_s         double precision NOT NULL CHECK (external_s >= 0),
    idle_s             double precision NOT NULL CHECK (idle_s >= 0),
    unknown_s          double precision NOT NULL CHECK (unknown_s >= 0),
    planned_downtime_s double precision NOT NULL CHECK (planned_downtime_s >= 0),
    not_scheduled_s    double precision NOT NULL CHECK (not_scheduled_s >= 0),
    processed          bigint NOT NULL CHECK (processed >= 0),
    defective          bigint NOT NULL CHECK (defective >= 0),
    rework             bigint NOT NULL CHECK (rework >= 0),
    ideal_cycle_s      double precision CHECK (ideal_cycle_s > 0),
    ideal_s            double precision GENERATED ALWAYS AS (ideal_cycle_s * processed) STORED,
    good_ideal_s       double precision
                       GENERATED ALWAYS AS (ideal_cycle_s * (processed - defective)) STORED,
    shift              text,
    shift_start        timestamptz,
    mapping_version    text    NOT NULL,
    revision           integer NOT NULL DEFAULT 0 CHECK (revision >= 0),
    corrected_at       timestamptz,
    CONSTRAINT oee_minutes_closure CHECK (abs(production_s + setup_s + breakdown_s + minor_stop_s
        + external_s + idle_s + unknown_s + planned_downtime_s + not_scheduled_s - 60) < 1e-6),
    CHECK ((shift IS NULL) = (shift_start IS NULL)),
    PRIMARY KEY (asset, ts)
);
SELECT create_hypertable('oee_minutes', by_range('ts', INTERVAL '1 day'));
-- refresh_oee_rollups recomputes a shift from its minutes: (asset, shift_start) finds them.
CREATE INDEX oee_minutes_shift_idx ON oee_minutes (asset, shift_start, ts)
    WHERE shift_start IS NOT NULL;

-- The roll-ups hold SUMS (never ratios), maintained only by refresh_oee_rollups() from
-- oee_minutes. `minutes` counts the minute rows summed.
CREATE TABLE oee_hourly (
    asset              text        NOT NULL,
    ts                 timestamptz NOT NULL CHECK (time_bucket('1 hour', ts) = ts),  -- UTC hour
    production_s       double precision NOT NULL,
    setup_s            double precision NOT NULL,
    breakdown_s        double precision NOT NULL,
    minor_stop_s       double precision NOT NULL,
    external_s         double precision NOT NULL,
    idle_s             double precision NOT NULL,
    unknown_s          double precision NOT NULL,
    planned_downtime_s double precision NOT NULL,
    not_scheduled_s    double precision NOT NULL,
    processed          bigint NOT NULL,
    defective          bigint NOT NULL,
    rework             bigint NOT NULL,
    ideal_s            double precision,
    good_ideal_s       double precision,
    minutes            integer NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (asset, ts)
);
CREATE INDEX oee_hourly_ts_idx ON oee_hourly (ts);

CREATE TABLE oee_shifts (
    asset              text        NOT NULL,
    shift_start        timestamptz NOT NULL,
    shift              text        NOT NULL,
    production_s       double precision NOT NULL,
    setup_s            double precision NOT NULL,
    breakdown_s        double precision NOT NULL,
    minor_stop_s       double precision NOT NULL,
    external_s         double precision NOT NULL,
    idle_s             double precision NOT NULL,
    unknown_s          double precision NOT NULL,
    planned_downtime_s double precision NOT NULL,
    not_scheduled_s    double precision NOT NULL,
    processed          bigint NOT NULL,
    defective          bigint NOT NULL,
    rework             bigint NOT NULL,
    ideal_s            double precision,
    good_ideal_s       double precision,
    minutes            integer NOT NULL,
    last_ts            timestamptz NOT NULL,       -- the latest minute summed
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (asset, shift_start)
);
CREATE INDEX oee_shifts_start_idx ON oee_shifts (shift_start);

-- Plant-local days: `day` is the calendar date in the asset's time zone (assets.timezone, UTC
-- when the asset has no row); the day spans [day 00:00, day+1 00:00) local time.
CREATE TABLE oee_daily (
    asset              text NOT NULL,
    day                date NOT NULL,
    timezone           text NOT NULL,              -- the zone the day was computed in
    production_s       double precision NOT NULL,
    setup_s            double precision NOT NULL,
    breakdown_s        double precision NOT NULL,
    minor_stop_s       double precision NOT NULL,
    external_s         double precision NOT NULL,
    idle_s             double precision NOT NULL,
    unknown_s          double precision NOT NULL,
    planned_downtime_s double precision NOT NULL,
    not_scheduled_s    double precision NOT NULL,
    processed          bigint NOT NULL,
    defective          bigint NOT NULL,
    rework             bigint NOT NULL,
    ideal_s            double precision,
    good_ideal_s       double precision,
    minutes            integer NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (asset, day)
);
CREATE INDEX oee_daily_day_idx ON oee_daily (day);

-- --- downtime ----------------------------------------------------------------------------------

-- One stop of one asset: open (end_ts NULL) while it runs. `loss` is the downtime share of the
-- six big losses; `category` the time category (never production).
CREATE TABLE downtime_events (
    asset       text        NOT NULL,
    start_ts    timestamptz NOT NULL,
    end_ts      timestamptz CHECK (end_ts >= start_ts),
    duration_s  double precision
                GENERATED ALWAYS AS (extract(epoch FROM end_ts - start_ts)::double precision) STORED,
    state       text,
    mode        text,
    stop_reason text,
    category    text CHECK (category IN ('setup', 'breakdown', 'minor_stop', 'external', 'idle',
                                         'unknown', 'planned_downtime', 'not_scheduled')),
    loss        text NOT NULL CHECK (loss IN ('equipment_failure', 'setup_adjustment',
                    'idling_minor_stops', 'planned_downtime', 'not_scheduled', 'unknown')),
    shift       text,
    updated_ts  timestamptz NOT NULL,
    PRIMARY KEY (asset, start_ts)
);
SELECT create_hypertable('downtime_events', by_range('start_ts', INTERVAL '7 days'));
CREATE INDEX downtime_events_open_idx ON downtime_events (asset) WHERE end_ts IS NULL;

-- --- alerts ------------------------------------------------------------------------------------

-- A plain table (not a hypertable): its key is the alert id alone. The flow upserts every column
-- but acked_by / acked_at, which belong to the people who acknowledge.
CREATE TABLE alerts (
    alert_id   uuid PRIMARY KEY,                   -- uuid5 over (rule, asset, raised_ts)
    rule       text        NOT NULL,
    asset      text        NOT NULL,
    raised_ts  timestamptz NOT NULL,
    updated_ts timestamptz NOT NULL,
    cleared_ts timestamptz CHECK (cleared_ts >= raised_ts),
    status     text NOT NULL CHECK (status IN ('active', 'cleared')),
    severity   text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    message    text NOT NULL,
    evidence   jsonb NOT NULL,
    revision   integer NOT NULL DEFAULT 0,
    acked_by   text,
    acked_at   timestamptz,
    CHECK ((status = 'active') = (cleared_ts IS NULL)),
    CHECK ((acked_by IS NULL) = (acked_at IS NULL)),
    UNIQUE (rule, asset, raised_ts)
);
CREATE INDEX alerts_active_idx ON alerts (raised_ts) WHERE status = 'active';
CREATE INDEX alerts_raised_idx ON alerts (raised_ts);

-- --- dead letters: where a Kafka message came from (NULL when not from Kafka) -----------------

ALTER TABLE dead_letters
    ADD COLUMN topic text,
    ADD COLUMN partition integer CHECK (partition >= 0),
    ADD COLUMN "offset" bigint CHECK ("offset" >= 0);
