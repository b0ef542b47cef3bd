-- OEE: the one KPI function every view uses, the roll-up refresh, and the documented views.
--
-- Repeatable: re-applied on every migrate. Dropped and re-created (not CREATE OR REPLACE) so a
-- changed column list or return type applies; later files (020_…) re-create what CASCADE drops.

DROP FUNCTION IF EXISTS oee_kpi CASCADE;
DROP FUNCTION IF EXISTS refresh_oee_rollups CASCADE;
DROP FUNCTION IF EXISTS oee_totals CASCADE;
DROP FUNCTION IF EXISTS oee_between CASCADE;
DROP FUNCTION IF EXISTS oee_coverage CASCADE;
DROP FUNCTION IF EXISTS oee_elapsed_s CASCADE;
DROP FUNCTION IF EXISTS dq_coverage_threshold CASCADE;
DROP FUNCTION IF EXISTS oee_newest_minute_assets CASCADE;
DROP FUNCTION IF EXISTS oee_newest_minute CASCADE;

-- The formulas, once (docs/sql.md, "OEE formulas"). Inputs are SUMS of a set of minutes; every
-- ratio is NULL when its denominator is 0 (no planned time has no availability: not 100 %, not
-- an error). A set-returning SQL function with one SELECT: the planner inlines it into each view.
CREATE FUNCTION oee_kpi(
    p_setup_is_availability_loss boolean,
    p_planned_downtime_in_base   boolean,
    p_minor_stops_in_performance boolean,
    p_production_s double precision, p_setup_s double precision,
    p_breakdown_s double precision, p_minor_stop_s double precision,
    p_external_s double precision, p_idle_s double precision, p_unknown_s double precision,
    p_planned_downtime_s double precision, p_not_scheduled_s double precision,
    p_processed bigint, p_defective bigint, p_rework bigint,
    p_ideal_s double precision, p_good_ideal_s double precision
) RETURNS TABLE (
    apt_s double precision, aust_s double precision, adet_s double precision,
    adot_s double precision, pbt_s double precision,
    planned_downtime_s double precision, not_scheduled_s double precision,
    base_s double precision, run_s double precision,
    ideal_s double precision, good_ideal_s double precision,
    pq bigint, gq bigint, sq bigint, rq bigint,
    availability double precision, performance double precision,
    quality double precision, oee double precision, performance_over_1 boolean,
    nee double precision, technical_efficiency double precision, setup_rate double precision,
    scrap_ratio double precision, rework_ratio double precision,
    allocation_efficiency double precision, utilization_efficiency double precision
) LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT e.apt, e.aust, e.adet, e.adot, e.pbt, p_planned_downtime_s, p_not_scheduled_s,
       b.base, b.run, p_ideal_s, p_good_ideal_s,
       p_processed, p_processed - p_defective, p_defective, p_rework,
       b.run / nullif(b.base, 0),
       p_ideal_s / nullif(b.run, 0),
       (p_processed - p_defective)::double precision / nullif(p_processed, 0),
       p_good_ideal_s / nullif(b.base, 0),
       p_ideal_s / nullif(b.run, 0) > 1,
       -- ISO 22400-2 KPIs, by their ISO definitions whatever the convention row:
       (e.apt + e.aust) / nullif(e.pbt, 0) * (p_ideal_s / nullif(e.apt, 0))
           * ((p_processed - p_defective)::double precision / nullif(p_processed, 0)),
       e.apt / nullif(e.apt + e.adet, 0),
       e.aust / nullif(e.apt + e.aust, 0),
       p_defective::double precision / nullif(p_processed, 0),
       p_rework::double precision / nullif(p_processed, 0),
       (e.apt + e.aust + e.adet) / nullif(e.pbt, 0),
       e.apt / nullif(e.apt + e.aust + e.adet, 0)
  FROM (SELECT p_production_s AS apt, p_setup_s AS aust,
               p_breakdown_s + p_minor_stop_s AS adet,
               p_external_s + p_idle_s + p_unknown_s AS adot,
               p_production_s + p_setup_s + p_breakdown_s + p_minor_stop_s
                   + p_external_s + p_idle_s + p_unknown_s AS pbt) e
 CROSS JOIN LATERAL (
        SELECT e.pbt
                   + CASE WHEN p_planned_downtime_in_base THEN p_planned_downtime_s ELSE 0 END
                   - CASE WHEN p_setup_is_availability_loss THEN 0 ELSE p_setup_s END AS base,
               p_production_s
                   + CASE WHEN p_minor_stops_in_performance THEN p_minor_stop_s ELSE 0 END AS run
       ) b
$$;

COMMENT ON FUNCTION oee_kpi IS
    'OEE and ISO 22400-2 KPIs from summed time elements and counts, for one convention. '
    'Used by every oee view; see docs/sql.md.';

-- Recompute the roll-ups (oee_hourly, oee_shifts, oee_daily) that touch [p_from, p_to) for
-- p_assets (NULL: every asset with minutes or roll-ups in the range) from oee_minutes.
-- Idempotent: a recomputation, never an increment, so calling it twice gives the rows of once.
-- Cost: the minutes of the touched hours and shifts; days are summed from the (just refreshed)
-- hours when the local midnights are whole UTC hours, from the minutes otherwise.
-- Concurrent callers serialise per asset (transaction advisory locks, taken in one order).
CREATE FUNCTION refresh_oee_rollups(p_assets text[], p_from timestamptz, p_to timestamptz)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_assets text[] := p_assets;
    h_from timestamptz;
    h_to timestamptz;
    s_from timestamptz;
    s_to timestamptz;
BEGIN
    IF p_from IS NULL OR p_to IS NULL THEN
        RAISE EXCEPTION 'refresh_oee_rollups(p_assets, p_from, p_to): p_from and p_to are '
            'required (the span of the minutes written); pass NULL p_assets for every asset';
    END IF;
    IF p_to <= p_from THEN
        RETURN;
    END IF;
    h_from := time_bucket('1 hour', p_from);
    h_to := time_bucket('1 hour', p_to - interval '1 microsecond') + interval '1 hour';
    IF v_assets IS NULL THEN
        SELECT array_agg(DISTINCT a) INTO v_assets FROM (
            SELECT asset FROM oee_minutes WHERE ts >= h_from AND ts < h_to
            UNION SELECT asset FROM oee_hourly WHERE ts >= h_from AND ts < h_to
            UNION SELECT asset FROM oee_shifts
                   WHERE shift_start > p_from - interval '24 hours' AND shift_start < p_to
        ) x(a);
    END IF;
    IF v_assets IS NULL OR cardinality(v_assets) = 0 THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(1634955892, k)    -- 1634955892 = 'asbt': this function's space
       FROM (SELECT DISTINCT hashtext(a) AS k FROM unnest(v_assets) a) x ORDER BY k;

    -- hours (UTC) touching the range
    DELETE FROM oee_hourly
     WHERE asset = ANY(v_assets) AND ts >= h_from AND ts < h_to;
    INSERT INTO oee_hourly (asset, ts, production_s, setup_s, breakdown_s, minor_stop_s,
                            external_s, idle_s, unknown_s, planned_downtime_s, not_scheduled_s,
                            processed, defective, rework, ideal_s, good_ideal_s, minutes)
    SELECT asset, time_bucket('1 hour', ts),
           sum(production_s), sum(setup_s), sum(breakdown_s), sum(minor_stop_s),
           sum(external_s), sum(idle_s), sum(unknown_s), sum(planned_downtime_s),
           sum(not_scheduled_s), sum(processed), sum(defective), sum(rework),
           sum(ideal_s), sum(good_ideal_s), count(*)
      FROM oee_minutes
     WHERE asset = ANY(v_assets) AND ts >= h_from AND ts < h_to
     GROUP BY 1, 2;

    -- shift instances touching the range: those of the minutes in it, and the existing roll-ups
    -- that may have lost minutes to a correction. A shift lasts at most 24 h (CHECK on shifts).
    IF to_regclass('pg_temp._oee_touched_shifts') IS NULL THEN  -- once per session
        CREATE TEMP TABLE _oee_touched_shifts (asset text, shift_start timestamptz)
            ON COMMIT DELETE ROWS;
    END IF;
    TRUNCATE _oee_touched_shifts;
    INSERT INTO _oee_touched_shifts
    SELECT DISTINCT asset, shift_start FROM oee_minutes
     WHERE asset = ANY(v_assets) AND ts >= p_from AND ts < p_to AND shift_start IS NOT NULL
    UNION
    SELECT asset, shift_start FROM oee_shifts
     WHERE asset = ANY(v_assets) AND shift_start > p_from - interval '24 hours'
       AND shift_start < p_to AND last_ts > p_from - interval '1 minute';
    SELECT min(shift_start), max(shift_start) + interval '24 hours' INTO s_from, s_to
      FROM _oee_touched_shifts;
    DELETE FROM oee_shifts s USING _oee_touched_shifts t
     WHERE s.asset = t.asset AND s.shift_start = t.shift_start;
    INSERT INTO oee_shifts (asset, shift_start, shift, production_s, setup_s, breakdown_s,
                            minor_stop_s, external_s, idle_s, unknown_s, planned_downtime_s,
                            not_scheduled_s, processed, defective, rework, ideal_s, good_ideal_s,
                            minutes, last_ts)
    SELECT t.asset, t.shift_start, r.*
      FROM _oee_touched_shifts t
     CROSS JOIN LATERAL (
            SELECT max(m.shift) AS shift,
                   sum(production_s), sum(setup_s), sum(breakdown_s), sum(minor_stop_s),
                   sum(external_s), sum(idle_s), sum(unknown_s), sum(planned_downtime_s),
                   sum(not_scheduled_s), sum(processed), sum(defective), sum(rework),
                   sum(ideal_s), sum(good_ideal_s), count(*) AS minutes, max(m.ts)
              FROM oee_minutes m
             WHERE m.asset = t.asset AND m.shift_start = t.shift_start
               AND m.ts >= t.shift_start AND m.ts < t.shift_start + interval '24 hours'
               AND m.ts >= s_from AND m.ts < s_to       -- constants: chunk exclusion
          ) r
     WHERE r.minutes > 0;

    -- plant-local days touching the range (assets.timezone, UTC when the asset has no row);
    -- `whole_hours`: its local midnights are whole UTC hours, so the day is a sum of hours.
    IF to_regclass('pg_temp._oee_touched_days') IS NULL THEN
        CREATE TEMP TABLE _oee_touched_days (
            asset text, day date, timezone text, day_from timestamptz, day_to timestamptz,
            whole_hours boolean
        ) ON COMMIT DELETE ROWS;
    END IF;
    TRUNCATE _oee_touched_days;
    INSERT INTO _oee_touched_days
    SELECT y.*, time_bucket('1 hour', y.day_from) = y.day_from
                AND time_bucket('1 hour', y.day_to) = y.day_to
      FROM (SELECT x.asset, d::date, x.tz,
                   d::date::timestamp AT TIME ZONE x.tz AS day_from,
                   (d::date + 1)::timestamp AT TIME ZONE x.tz AS day_to
              FROM (SELECT a.asset, coalesce(s.timezone, 'UTC') AS tz
                      FROM unnest(v_assets) a(asset) LEFT JOIN assets s ON s.asset = a.asset) x
             CROSS JOIN LATERAL generate_series(
                    (p_from AT TIME ZONE x.tz)::date,
                    ((p_to - interval '1 microsecond') AT TIME ZONE x.tz)::date,
                    interval '1 day') d) y;
    SELECT min(day_from), max(day_to) INTO s_from, s_to FROM _oee_touched_days;
    DELETE FROM oee_daily o USING _oee_touched_days t
     WHERE o.asset = t.asset AND o.day = t.day;
    INSERT INTO oee_daily (asset, day, timezone, production_s, setup_s, breakdown_s,
                           minor_stop_s, external_s, idle_s, unknown_s, planned_downtime_s,
                           not_scheduled_s, processed, defective, rework, ideal_s, good_ideal_s,
                           minutes)
    SELECT t.asset, t.day, t.timezone,
           sum(h.production_s), sum(h.setup_s), sum(h.breakdown_s), sum(h.minor_stop_s),
           sum(h.external_s), sum(h.idle_s), sum(h.unknown_s), sum(h.planned_downtime_s),
           sum(h.not_scheduled_s), sum(h.processed), sum(h.defective), sum(h.rework),
           sum(h.ideal_s), sum(h.good_ideal_s), sum(h.minutes)
      FROM _oee_touched_days t
      JOIN oee_hourly h ON h.asset = t.asset AND h.ts >= t.day_from AND h.ts < t.day_to
     WHERE t.whole_hours AND h.ts >= s_from AND h.ts < s_to
     GROUP BY t.asset, t.day, t.timezone;
    INSERT INTO oee_daily (asset, day, timezone, production_s, setup_s, breakdown_s,
                           minor_stop_s, external_s, idle_s, unknown_s, planned_downtime_s,
                           not_scheduled_s, processed, defective, rework, ideal_s, good_ideal_s,
                           minutes)
    SELECT t.asset, t.day, t.timezone,
           sum(m.production_s), sum(m.setup_s), sum(m.breakdown_s), sum(m.minor_stop_s),
           sum(m.external_s), sum(m.idle_s), sum(m.unknown_s), sum(m.planned_downtime_s),
           sum(m.not_scheduled_s), sum(m.processed), sum(m.defective), sum(m.rework),
           sum(m.ideal_s), sum(m.good_ideal_s), count(*)
      FROM _oee_touched_days t
      JOIN oee_minutes m ON m.asset = t.asset AND m.ts >= t.day_from AND m.ts < t.day_to
     WHERE NOT t.whole_hours AND m.ts >= s_from AND m.ts < s_to
     GROUP BY t.asset, t.day, t.timezone;
END
$$;

COMMENT ON FUNCTION refresh_oee_rollups IS
    'Recompute oee_hourly, oee_shifts and oee_daily rows touching [p_from, p_to) for p_assets '
    '(NULL = all) from oee_minutes. Idempotent. Called by the OEE sink after each batch.';

-- Sums of every asset's minutes in [p_from, p_to): the whole hours [h1, h2) from oee_hourly,
-- only the partial head hour [p_from, h1) and tail hour [h2, p_to) from oee_minutes, where h1 is
-- p_from rounded up and h2 is p_to rounded down to the hour (UTC). Without a whole hour
-- (h1 >= h2) the head [p_from, min(h1, p_to)) and the tail [h1, p_to) split the range at h1.
-- Each part is its own plain range on ts (the index and the chunk exclusion use it): a week of
-- 50 assets reads 8,400 hourly rows and at most 2 × 59 minutes per asset, not 504,000 minutes.
-- Equal to summing oee_minutes over the range as long as oee_hourly is refreshed (the sink
-- refreshes in the transaction that writes the minutes); tests/integration/test_sql_pipelines.py
-- proves it on partial, whole-hour and empty ranges. Inlined into the caller (one SELECT).
CREATE FUNCTION oee_totals(p_from timestamptz, p_to timestamptz)
RETURNS TABLE (
    asset text, production_s double precision, setup_s double precision,
    breakdown_s double precision, minor_stop_s double precision, external_s double precision,
    idle_s double precision, unknown_s double precision, planned_downtime_s double precision,
    not_scheduled_s double precision, processed bigint, defective bigint, rework bigint,
    ideal_s double precision, good_ideal_s double precision, minutes bigint
) LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT p.asset, sum(p.production_s), sum(p.setup_s), sum(p.breakdown_s), sum(p.minor_stop_s),
       sum(p.external_s), sum(p.idle_s), sum(p.unknown_s), sum(p.planned_downtime_s),
       sum(p.not_scheduled_s), sum(p.processed)::bigint, sum(p.defective)::bigint,
       sum(p.rework)::bigint, sum(p.ideal_s), sum(p.good_ideal_s), sum(p.minutes)::bigint
  FROM (
    SELECT h.asset, h.production_s, h.setup_s, h.breakdown_s, h.minor_stop_s, h.external_s,
           h.idle_s, h.unknown_s, h.planned_downtime_s, h.not_scheduled_s, h.processed,
           h.defective, h.rework, h.ideal_s, h.good_ideal_s, h.minutes::bigint AS minutes
      FROM oee_hourly h
     WHERE h.ts >= time_bucket('1 hour', p_from + interval '1 hour' - interval '1 microsecond')
       AND h.ts < time_bucket('1 hour', p_to)
    UNION ALL  -- the head: [p_from, min(h1, p_to))
    SELECT m.asset, m.production_s, m.setup_s, m.breakdown_s, m.minor_stop_s, m.external_s,
           m.idle_s, m.unknown_s, m.planned_downtime_s, m.not_scheduled_s, m.processed,
           m.defective, m.rework, m.ideal_s, m.good_ideal_s, 1
      FROM oee_minutes m
     WHERE m.ts >= p_from
       AND m.ts < least(p_to, time_bucket('1 hour',
                                          p_from + interval '1 hour' - interval '1 microsecond'))
    UNION ALL  -- the tail: [max(h1, h2), p_to)  (h1 >= p_from)
    SELECT m.asset, m.production_s, m.setup_s, m.breakdown_s, m.minor_stop_s, m.external_s,
           m.idle_s, m.unknown_s, m.planned_downtime_s, m.not_scheduled_s, m.processed,
           m.defective, m.rework, m.ideal_s, m.good_ideal_s, 1
      FROM oee_minutes m
     WHERE m.ts >= greatest(time_bucket('1 hour', p_to), time_bucket('1 hour',
                                          p_from + interval '1 hour' - interval '1 microsecond'))
       AND m.ts < p_to
  ) p
 GROUP BY p.asset
$$;

-- --- data coverage (docs/sql.md, "Data quality") -----------------------------------------------
-- Every OEE view ends with two columns: `coverage`, the share of the period's elapsed seconds for
-- which the OEE flow knew the state (Σ (60 − unknown_s) over the minute rows ÷ (elapsed seconds ×
-- assets)), and `trustworthy` (coverage >= dq_coverage_threshold()). They live here, not in
-- 050_quality.sql, because these views need them and 010 is applied first.

-- The threshold below which an OEE figure is not trustworthy: dq_settings 'oee_min_coverage'
-- (the quality flow writes ASBUILT_DQ_MIN_COVERAGE there at start), 0.9 without the row.
CREATE FUNCTION dq_coverage_threshold() RETURNS double precision
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    RETURN coalesce((SELECT value FROM dq_settings WHERE name = 'oee_min_coverage'), 0.9);
END
$$;

COMMENT ON FUNCTION dq_coverage_threshold IS
    'OEE figures with coverage below this are not trustworthy (dq_settings oee_min_coverage, '
    'default 0.9). See docs/sql.md, "Data quality".';

-- The start of the newest minute the OEE flow has written for any asset (NULL: none yet): how
-- far the pipeline's time has advanced. One index probe (the hypertable's ts index).
CREATE FUNCTION oee_newest_minute() RETURNS timestamptz
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN  -- plpgsql: the plan is cached per session (planning it costs more than running it)
    RETURN (SELECT max(ts) FROM oee_minutes);
END
$$;

-- The assets that have written that newest minute.
CREATE FUNCTION oee_newest_minute_assets() RETURNS text[]
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    v_newest timestamptz := oee_newest_minute();
    v_assets text[];
BEGIN  -- ts = a value (not a subquery): the planner keeps only its chunk (~0.5 ms, not 3 ms)
    SELECT coalesce(array_agg(asset ORDER BY asset), '{}') INTO v_assets
      FROM oee_minutes WHERE ts = v_newest;
    RETURN v_assets;
END
$$;

-- One row: what the coverage of every view row is judged against. OFFSET 0 keeps the planner
-- from pulling the function calls up into the rows of the views (they run once per query).
CREATE VIEW oee_coverage_basis AS
SELECT oee_newest_minute() AS newest_minute,
       oee_newest_minute_assets() AS newest_assets,
       dq_coverage_threshold() AS coverage_threshold
OFFSET 0;

-- The elapsed seconds × assets a period [p_start, p_end) of p_assets assets is judged on, when
-- p_assets_newest of them have written the newest minute p_newest. A period that ended
-- (p_end <= p_newest) counts whole; one in progress up to the end of the newest minute for an
-- asset that has written it and up to its start for one that has not yet (the OEE flow closes
-- each asset's minutes on that asset's own watermark: one minute behind the newest is on time,
-- more is missing data). 0 when nothing of it has elapsed; NULL without any minute written.
CREATE FUNCTION oee_elapsed_s(
    p_assets bigint, p_assets_newest bigint, p_start timestamptz, p_end timestamptz,
    p_newest timestamptz
) RETURNS double precision LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT CASE WHEN p_newest IS NOT NULL THEN greatest(  -- (least/greatest skip NULLs)
           p_assets * date_part('epoch', least(p_end, p_newest + interval '1 minute') - p_start)
           - CASE WHEN p_newest >= p_start AND p_newest < p_end
                  THEN 60.0::double precision * (p_assets - p_assets_newest) ELSE 0 END,
           0) END
$$;

-- Coverage from the sums of a period's minute rows (p_minutes rows, p_unknown_s unknown
-- seconds): known seconds ÷ oee_elapsed_s(...); NULL when nothing has elapsed. Inlined.
CREATE FUNCTION oee_coverage(
    p_minutes bigint, p_unknown_s double precision, p_assets bigint, p_assets_newest bigint,
    p_start timestamptz, p_end timestamptz, p_newest timestamptz
) RETURNS double precision LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT (60.0::double precision * p_minutes - p_unknown_s)
       / nullif(oee_elapsed_s(p_assets, p_assets_newest, p_start, p_end, p_newest), 0)
$$;

COMMENT ON FUNCTION oee_coverage IS
    'Coverage of a period from its summed minute rows: (60 × minutes − unknown_s) ÷ elapsed '
    'seconds × assets; a period in progress is judged on its elapsed part. docs/sql.md.';

-- --- views -------------------------------------------------------------------------------------
-- Every view: one row per (period, asset | line | site, convention). Filter on `convention`.
-- The last two columns: coverage and trustworthy (see above).

CREATE VIEW oee_by_minute AS
SELECT m.ts, m.asset, a.line, a.site, m.shift, m.shift_start, c.name AS convention,
       1 AS minutes, m.ideal_cycle_s, m.mapping_version, m.revision, m.corrected_at, k.*,
       (60 - m.unknown_s) / 60 AS coverage,
       (60 - m.unknown_s) / 60 >= w.coverage_threshold AS trustworthy
  FROM oee_minutes m
  LEFT JOIN assets a ON a.asset = m.asset
 CROSS JOIN oee_coverage_basis w
 CROSS JOIN oee_conventions c
 CROSS JOIN LATERAL oee_kpi(
        c.setup_is_availability_loss, c.planned_downtime_in_base, c.minor_stops_in_performance,
        m.production_s, m.setup_s, m.breakdown_s, m.minor_stop_s, m.external_s, m.idle_s,
        m.unknown_s, m.planned_downtime_s, m.not_scheduled_s, m.processed, m.defective,
        m.rework, m.ideal_s, m.good_ideal_s) k;

CREATE VIEW oee_by_hour AS
SELECT h.ts, h.asset, a.line, a.site, c.name AS convention, h.minutes, k.*,
       v.coverage, v.coverage >= w.coverage_threshold AS trustworthy
  FROM oee_hourly h
  LEFT JOIN assets a ON a.asset = h.asset
 CROSS JOIN oee_coverage_basis w
 CROSS JOIN oee_conventions c
 CROSS JOIN LATERAL oee_kpi(
        c.setup_is_availability_loss, c.planned_downtime_in_base, c.minor_stops_in_performance,
        h.production_s, h.setup_s, h.breakdown_s, h.minor_stop_s, h.external_s, h.idle_s,
        h.unknown_s, h.planned_downtime_s, h.not_scheduled_s, h.processed, h.defective,
        h.rework, h.ideal_s, h.good_ideal_s) k
 CROSS JOIN LATERAL (SELECT oee_coverage(
        h.minutes, h.unknown_s, 1, (h.asset = ANY(w.newest_assets))::int,
        h.ts, h.ts + interval '1 hour', w.newest_minute) AS coverage) v;

-- A shift's length comes from `shifts` (its site's instance); without one, the shift is judged
-- up to its latest minute.
CREATE VIEW oee_by_shift AS
SELECT s.shift_start, s.shift, s.asset, a.line, a.site, c.name AS convention, s.minutes, k.*,
       v.coverage, v.coverage >= w.coverage_threshold AS trustworthy
  FROM oee_shifts s
  LEFT JOIN assets a ON a.asset = s.asset
  LEFT JOIN shifts sh ON sh.site = a.site AND sh.start_ts = s.shift_start
 CROSS JOIN oee_coverage_basis w
 CROSS JOIN oee_conventions c
 CROSS JOIN LATERAL oee_kpi(
        c.setup_is_availability_loss, c.planned_downtime_in_base, c.minor_stops_in_performance,
        s.production_s, s.setup_s, s.breakdown_s, s.minor_stop_s, s.external_s, s.idle_s,
        s.unknown_s, s.planned_downtime_s, s.not_scheduled_s, s.processed, s.defective,
        s.rework, s.ideal_s, s.good_ideal_s) k
 CROSS JOIN LATERAL (SELECT oee_coverage(
        s.minutes, s.unknown_s, 1, (s.last_ts = w.newest_minute)::int, s.shift_start,
        coalesce(sh.end_ts, s.last_ts + interval '1 minute'), w.newest_minute) AS coverage) v;

CREATE VIEW oee_by_day AS
SELECT d.day, d.timezone, d.asset, a.line, a.site, c.name AS convention, d.minutes, k.*,
       v.coverage, v.coverage >= w.coverage_threshold AS trustworthy
  FROM oee_daily d
  LEFT JOIN assets a ON a.asset = d.asset
 CROSS JOIN oee_coverage_basis w
 CROSS JOIN oee_conventions c
 CROSS JOIN LATERAL oee_kpi(
        c.setup_is_availability_loss, c.planned_downtime_in_base, c.minor_stops_in_performance,
        d.production_s, d.setup_s, d.breakdown_s, d.minor_stop_s, d.external_s, d.idle_s,
        d.unknown_s, d.planned_downtime_s, d.not_scheduled_s, d.processed, d.defective,
        d.rework, d.ideal_s, d.good_ideal_s) k
 CROSS JOIN LATERAL (SELECT oee_coverage(
        d.minutes, d.unknown_s, 1, (d.asset = ANY(w.newest_assets))::int,
        d.day::timestamp AT TIME ZONE d.timezone, (d.day + 1)::timestamp AT TIME ZONE d.timezone,
        w.newest_minute) AS coverage) v;

-- Any range, per asset: the KPIs of [p_from, p_to) (whole hours from oee_hourly).
CREATE FUNCTION oee_between(p_from timestamptz, p_to timestamptz)
RETURNS TABLE (
    asset text, line text, site text, convention text, minutes bigint,
    apt_s double precision, aust_s double precision, adet_s double precision,
    adot_s double precision, pbt_s double precision,
    planned_downtime_s double precision, not_scheduled_s double precision,
    base_s double precision, run_s double precision,
    ideal_s double precision, good_ideal_s double precision,
    pq bigint, gq bigint, sq bigint, rq bigint,
    availability double precision, performance double precision,
    quality double precision, oee double precision, performance_over_1 boolean,
    nee double precision, technical_efficiency double precision, setup_rate double precision,
    scrap_ratio double precision, rework_ratio double precision,
    allocation_efficiency double precision, utilization_efficiency double precision
) LANGUAGE sql STABLE AS $$
SELECT t.asset, a.line, a.site, c.name, t.minutes, k.*
  FROM oee_totals(p_from, p_to) t
  LEFT JOIN assets a ON a.asset = t.asset
 CROSS JOIN oee_conventions c
 CROSS JOIN LATERAL oee_kpi(
        c.setup_is_availability_loss, c.planned_downtime_in_base, c.minor_stops_in_performance,
        t.production_s, t.setup_s, t.breakdown_s, t.minor_stop_s, t.external_s, t.idle_s,
        t.unknown_s, t.planned_downtime_s, t.not_scheduled_s, t.processed, t.defective,
        t.rework, t.ideal_s, t.good_ideal_s) k
$$;

-- Lines and sites: the SUMMED components of their assets (assets.line / assets.site), never an
-- average of ratios. Assets without a row in `assets` are in no line and no site. `assets` is the
-- number of assets with rows in the period; coverage is judged on every asset of the line/site in
-- the plant model (`plant_assets`, as line_dq_kpis counts them): an asset that wrote nothing in
-- the period adds its elapsed seconds and no known second (a silent machine is not "covered").

CREATE VIEW line_oee_by_hour AS
SELECT g.ts, g.line, g.site, c.name AS convention, g.assets, g.minutes, k.*,
       v.coverage, v.coverage >= g.coverage_threshold AS trustworthy
  FROM (SELECT r.ts, a.line, a.site,
               sum(r.production_s) AS production_s, sum(r.setup_s) AS setup_s,
               sum(r.breakdown_s) AS breakdown_s, sum(r.minor_stop_s) AS minor_stop_s,
               sum(r.external_s) AS external_s, sum(r.idle_s) AS idle_s,
               sum(r.unknown_s) AS unknown_s, sum(r.planned_downtime_s) AS planned_downtime_s,
               sum(r.not_scheduled_s) AS not_scheduled_s, sum(r.processed)::bigint AS processed,
               sum(r.defective)::bigint AS defective, sum(r.rework)::bigint AS rework,
               sum(r.ideal_s) AS ideal_s, sum(r.good_ideal_s) AS good_ideal_s,
               sum(r.minutes)::bigint AS minutes, count(*) AS assets,
               count(*) FILTER (  -- the array is searched only in the newest minute's hour
                   WHERE CASE WHEN r.ts = time_bucket('1 hour', w.newest_minute)
                              THEN r.asset = ANY(w.newest_assets) END) AS assets_newest,
               w.newest_minute, w.coverage_threshold
          FROM oee_hourly r JOIN assets a ON a.asset = r.asset
         CROSS JOIN oee_coverage_basis w WHERE a.line IS NOT NULL
         GROUP BY r.ts, a.line, a.site, w.newest_minute, w.coverage_threshold) g
  JOIN (SELECT line, site, count(*) AS plant_assets FROM assets  -- the plant model
         WHERE line IS NOT NULL GROUP BY line, site) p
    ON p.line = g.line AND p.site = g.site
 CROSS JOIN oee_conventions c
 CROSS JOIN LATERAL oee_kpi(
        c.setup_is_availability_loss, c.planned_downtime_in_base, c.minor_stops_in_performance,
        g.production_s, g.setup_s, g.breakdown_s, g.minor_stop_s, g.external_s, g.idle_s,
        g.unknown_s, g.planned_downtime_s, g.not_scheduled_s, g.processed, g.defective,
        g.rework, g.ideal_s, g.good_ideal_s) k
 CROSS JOIN LATERAL (SELECT oee_coverage(
        g.minutes, g.unknown_s, p.plant_assets, g.assets_newest, g.ts, g.ts + interval '1 hour',
        g.newest_minute) AS coverage) v;

CREATE VIEW line_oee_by_shift AS
SELECT g.shift_start, g.shift, g.line, g.site, c.name AS convention, g.assets, g.minutes, k.*,
       v.coverage, v.coverage >= g.coverage_threshold AS trustworthy
  FROM (SELECT r.shift_start, max(r.shift) AS shift, a.line, a.site,
               sum(r.production_s) AS production_s, sum(r.setup_s) AS setup_s,
               sum(r.breakdown_s) AS breakdown_s, sum(r.minor_stop_s) AS minor_stop_s,
               sum(r.external_s) AS external_s, sum(r.idle_s) AS idle_s,
               sum(r.unknown_s) AS unknown_s, sum(r.planned_downtime_s) AS planned_downtime_s,
               sum(r.not_scheduled_s) AS not_scheduled_s, sum(r.processed)::bigint AS processed,
               sum(r.defective)::bigint AS defective, sum(r.rework)::bigint AS rework,
               sum(r.ideal_s) AS ideal_s, sum(r.good_ideal_s) AS good_ideal_s,
               sum(r.minutes)::bigint AS minutes, count(*) AS assets,
               count(*) FILTER (WHERE r.last_ts = w.newest_minute) AS assets_newest,  -- wrote it
               w.newest_minute, w.coverage_threshold,
               max(r.last_ts) AS last_ts
          FROM oee_shifts r JOIN assets a ON a.asset = r.asset
         CROSS JOIN oee_coverage_basis w WHERE a.line IS NOT NULL
         GROUP BY r.shift_start, a.line, a.site, w.newest_minute, w.coverage_threshold) g
  JOIN (SELECT line, site, count(*) AS plant_assets FROM assets  -- the plant model
         WHERE line IS NOT NULL GROUP BY line, site) p
    ON p.line = g.line AND p.site = g.site
  LEFT JOIN shifts sh ON sh.site = g.site AND sh.start_ts = g.shift_start
 CROSS JOIN oee_conventions c
 CROSS JOIN LATERAL oee_kpi(
        c.setup_is_availability_loss, c.planned_downtime_in_base, c.minor_stops_in_performance,
        g.production_s, g.setup_s, g.breakdown_s, g.minor_stop_s, g.external_s, g.idle_s,
        g.unknown_s, g.planned_downtime_s, g.not_scheduled_s, g.processed, g.defective,
        g.rework, g.ideal_s, g.good_ideal_s) k
 CROSS JOIN LATERAL (SELECT oee_coverage(
        g.minutes, g.unknown_s, p.plant_assets, g.assets_newest, g.shift_start,
        coalesce(sh.end_ts, g.last_ts + interval '1 minute'),
        g.newest_minute) AS coverage) v;

CREATE VIEW line_oee_by_day AS
SELECT g.day, g.timezone, g.line, g.site, c.name AS convention, g.assets, g.minutes, k.*,
       v.coverage, v.coverage >= g.coverage_threshold AS trustworthy
  FROM (SELECT r.day, max(r.timezone) AS timezone, a.line, a.site,
               sum(r.production_s) AS production_s, sum(r.setup_s) AS setup_s,
               sum(r.breakdown_s) AS breakdown_s, sum(r.minor_stop_s) AS minor_stop_s,
               sum(r.external_s) AS external_s, sum(r.idle_s) AS idle_s,
               sum(r.unknown_s) AS unknown_s, sum(r.planned_downtime_s) AS planned_downtime_s,
               sum(r.not_scheduled_s) AS not_scheduled_s, sum(r.processed)::bigint AS processed,
               sum(r.defective)::bigint AS defective, sum(r.rework)::bigint AS rework,
               sum(r.ideal_s) AS ideal_s, sum(r.good_ideal_s) AS good_ideal_s,
               sum(r.minutes)::bigint AS minutes, count(*) AS assets,
               count(*) FILTER (  -- the array is searched only in the newest minute's day
                   WHERE CASE WHEN r.day = (w.newest_minute AT TIME ZONE r.timezone)::date
                              THEN r.asset = ANY(w.newest_assets) END) AS assets_newest,
               w.newest_minute, w.coverage_threshold
          FROM oee_daily r JOIN assets a ON a.asset = r.asset
         CROSS JOIN oee_coverage_basis w WHERE a.line IS NOT NULL
         GROUP BY r.day, a.line, a.site, w.newest_minute, w.coverage_threshold) g
  JOIN (SELECT line, site, count(*) AS plant_assets FROM assets  -- the plant model
         WHERE line IS NOT NULL GROUP BY line, site) p
    ON p.line = g.line AND p.site = g.site
 CROSS JOIN oee_conventions c
 CROSS JOIN LATERAL oee_kpi(
        c.setup_is_availability_loss, c.planned_downtime_in_base, c.minor_stops_in_performance,
        g.production_s, g.setup_s, g.breakdown_s, g.minor_stop_s, g.external_s, g.idle_s,
        g.unknown_s, g.planned_downtime_s, g.not_scheduled_s, g.processed, g.defective,
        g.rework, g.ideal_s, g.good_ideal_s) k
 CROSS JOIN LATERAL (SELECT oee_coverage(
        g.minutes, g.unknown_s, p.plant_assets, g.assets_newest,
        g.day::timestamp AT TIME ZONE g.timezone,
        (g.day + 1)::timestamp AT TIME ZONE g.timezone,
        g.newest_minute) AS coverage) v;


CREATE VIEW site_oee_by_hour AS
SELECT g.ts, g.site, c.name AS convention, g.assets, g.minutes, k.*,
       v.coverage, v.coverage >= g.coverage_threshold AS trustworthy
  FROM (SELECT r.ts, a.site,
               sum(r.production_s) AS production_s, sum(r.setup_s) AS setup_s,
               sum(r.breakdown_s) AS breakdown_s, sum(r.minor_stop_s) AS minor_stop_s,
               sum(r.external_s) AS external_s, sum(r.idle_s) AS idle_s,
               sum(r.unknown_s) AS unknown_s, sum(r.planned_downtime_s) AS planned_downtime_s,
               sum(r.not_scheduled_s) AS not_scheduled_s, sum(r.processed)::bigint AS processed,
               sum(r.defective)::bigint AS defective, sum(r.rework)::bigint AS rework,
               sum(r.ideal_s) AS ideal_s, sum(r.good_ideal_s) AS good_ideal_s,
               sum(r.minutes)::bigint AS minutes, count(*) AS assets,
               count(*) FILTER (  -- the array is searched only in the newest minute's hour
                   WHERE CASE WHEN r.ts = time_bucket('1 hour', w.newest_minute)
                              THEN r.asset = ANY(w.newest_assets) END) AS assets_newest,
               w.newest_minute, w.coverage_threshold
          FROM oee_hourly r JOIN assets a ON a.asset = r.asset
         CROSS JOIN oee_coverage_basis w
         GROUP BY r.ts, a.site, w.newest_minute, w.coverage_threshold) g
  JOIN (SELECT site, count(*) AS plant_assets FROM assets GROUP BY site) p  -- plant model
    ON p.site = g.site
 CROSS JOIN oee_conventions c
 CROSS JOIN LATERAL oee_kpi(
        c.setup_is_availability_loss, c.planned_downtime_in_base, c.minor_stops_in_performance,
        g.production_s, g.setup_s, g.breakdown_s, g.minor_stop_s, g.external_s, g.idle_s,
        g.unknown_s, g.planned_downtime_s, g.not_scheduled_s, g.processed, g.defective,
        g.rework, g.ideal_s, g.good_ideal_s) k
 CROSS JOIN LATERAL (SELECT oee_coverage(
        g.minutes, g.unknown_s, p.plant_assets, g.assets_newest, g.ts, g.ts + interval '1 hour',
        g.newest_minute) AS coverage) v;

CREATE VIEW site_oee_by_shift AS
SELECT g.shift_start, g.shift, g.site, c.name AS convention, g.assets, g.minutes, k.*,
       v.coverage, v.coverage >= g.coverage_threshold AS trustworthy
  FROM (SELECT r.shift_start, max(r.shift) AS shift, a.site,
               sum(r.production_s) AS production_s, sum(r.setup_s) AS setup_s,
               sum(r.breakdown_s) AS breakdown_s, sum(r.minor_stop_s) AS minor_stop_s,
               sum(r.external_s) AS external_s, sum(r.idle_s) AS idle_s,
               sum(r.unknown_s) AS unknown_s, sum(r.planned_downtime_s) AS planned_downtime_s,
               sum(r.not_scheduled_s) AS not_scheduled_s, sum(r.processed)::bigint AS processed,
               sum(r.defective)::bigint AS defective, sum(r.rework)::bigint AS rework,
               sum(r.ideal_s) AS ideal_s, sum(r.good_ideal_s) AS good_ideal_s,
               sum(r.minutes)::bigint AS minutes, count(*) AS assets,
               count(*) FILTER (WHERE r.last_ts = w.newest_minute) AS assets_newest,  -- wrote it
               w.newest_minute, w.coverage_threshold,
               max(r.last_ts) AS last_ts
          FROM oee_shifts r JOIN assets a ON a.asset = r.asset
         CROSS JOIN oee_coverage_basis w
         GROUP BY r.shift_start, a.site, w.newest_minute, w.coverage_threshold) g
  JOIN (SELECT site, count(*) AS plant_assets FROM assets GROUP BY site) p  -- plant model
    ON p.site = g.site
  LEFT JOIN shifts sh ON sh.site = g.site AND sh.start_ts = g.shift_start
 CROSS JOIN oee_conventions c
 CROSS JOIN LATERAL oee_kpi(
        c.setup_is_availability_loss, c.planned_downtime_in_base, c.minor_stops_in_performance,
        g.production_s, g.setup_s, g.breakdown_s, g.minor_stop_s, g.external_s, g.idle_s,
        g.unknown_s, g.planned_downtime_s, g.not_scheduled_s, g.processed, g.defective,
        g.rework, g.ideal_s, g.good_ideal_s) k
 CROSS JOIN LATERAL (SELECT oee_coverage(
        g.minutes, g.unknown_s, p.plant_assets, g.assets_newest, g.shift_start,
        coalesce(sh.end_ts, g.last_ts + interval '1 minute'),
        g.newest_minute) AS coverage) v;

CREATE VIEW site_oee_by_day AS
SELECT g.day, g.timezone, g.site, c.name AS convention, g.assets, g.minutes, k.*,
       v.coverage, v.coverage >= g.coverage_threshold AS trustworthy
  FROM (SELECT r.day, max(r.timezone) AS timezone, a.site,
               sum(r.production_s) AS production_s, sum(r.setup_s) AS setup_s,
               sum(r.breakdown_s) AS breakdown_s, sum(r.minor_stop_s) AS minor_stop_s,
               sum(r.external_s) AS external_s, sum(r.idle_s) AS idle_s,
               sum(r.unknown_s) AS unknown_s, sum(r.planned_downtime_s) AS planned_downtime_s,
               sum(r.not_scheduled_s) AS not_scheduled_s, sum(r.processed)::bigint AS processed,
               sum(r.defective)::bigint AS defective, sum(r.rework)::bigint AS rework,
               sum(r.ideal_s) AS ideal_s, sum(r.good_ideal_s) AS good_ideal_s,
               sum(r.minutes)::bigint AS minutes, count(*) AS assets,
               count(*) FILTER (  -- the array is searched only in the newest minute's day
                   WHERE CASE WHEN r.day = (w.newest_minute AT TIME ZONE r.timezone)::date
                              THEN r.asset = ANY(w.newest_assets) END) AS assets_newest,
               w.newest_minute, w.coverage_threshold
          FROM oee_daily r JOIN assets a ON a.asset = r.asset
         CROSS JOIN oee_coverage_basis w
         GROUP BY r.day, a.site, w.newest_minute, w.coverage_threshold) g
  JOIN (SELECT site, count(*) AS plant_assets FROM assets GROUP BY site) p  -- plant model
    ON p.site = g.site
 CROSS JOIN oee_conventions c
 CROSS JOIN LATERAL oee_kpi(
        c.setup_is_availability_loss, c.planned_downtime_in_base, c.minor_stops_in_performance,
        g.production_s, g.setup_s, g.breakdown_s, g.minor_stop_s, g.external_s, g.idle_s,
        g.unknown_s, g.planned_downtime_s, g.not_scheduled_s, g.processed, g.defective,
        g.rework, g.ideal_s, g.good_ideal_s) k
 CROSS JOIN LATERAL (SELECT oee_coverage(
        g.minutes, g.unknown_s, p.plant_assets, g.assets_newest,
        g.day::timestamp AT TIME ZONE g.timezone,
        (g.day + 1)::timestamp AT TIME ZONE g.timezone,
        g.newest_minute) AS coverage) v;
