-- Downtime: open stops, Pareto, the six big losses, MTBF / MTTR (docs/sql.md, "Downtime").

DROP VIEW IF EXISTS downtime_open, downtime_pareto_reason, downtime_pareto_loss CASCADE;
DROP FUNCTION IF EXISTS downtime_pareto CASCADE;
DROP FUNCTION IF EXISTS six_big_losses CASCADE;
DROP FUNCTION IF EXISTS mtbf_mttr CASCADE;

-- Stops still running, with how long they have run so far.
CREATE VIEW downtime_open AS
SELECT d.asset, a.line, a.site, d.start_ts, d.state, d.mode, d.stop_reason, d.category, d.loss,
       d.shift, extract(epoch FROM now() - d.start_ts)::double precision AS running_s,
       d.updated_ts
  FROM downtime_events d
  LEFT JOIN assets a ON a.asset = d.asset
 WHERE d.end_ts IS NULL;

-- Pareto of the downtime in [p_from, p_to) by p_by = 'reason' (stop_reason), 'loss',
-- 'category', 'state' or 'asset', for the assets matching p_asset_like (a LIKE pattern, e.g.
-- 'acme/basel/packaging/line1/%'). Every stop overlapping the range counts once; its duration
-- is clipped to the range; an open stop runs until p_now (default: the database's now(); the
-- dashboards pass their clock's "now", which is the latest data time when accelerated demo data
-- runs ahead of the wall clock -- measured to the wall clock, its open stops would count 0 s).
-- Sorted by duration, longest first, with each key's share and the cumulative share of the
-- total downtime.
CREATE FUNCTION downtime_pareto(
    p_from timestamptz, p_to timestamptz, p_by text DEFAULT 'reason',
    p_asset_like text DEFAULT '%', p_now timestamptz DEFAULT now()
) RETURNS TABLE (
    key text, stops bigint, duration_s double precision, share double precision,
    cumulative_share double precision
) LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_by NOT IN ('reason', 'loss', 'category', 'state', 'asset') THEN
        RAISE EXCEPTION 'downtime_pareto: p_by is %; use reason, loss, category, state or asset',
            quote_literal(p_by);
    END IF;
    RETURN QUERY
    WITH clipped AS (
        SELECT CASE p_by WHEN 'reason' THEN coalesce(d.stop_reason, '(none)')
                         WHEN 'loss' THEN d.loss
                         WHEN 'category' THEN coalesce(d.category, '(none)')
                         WHEN 'state' THEN coalesce(d.state, '(none)')
                         ELSE d.asset END AS k,
               extract(epoch FROM least(coalesce(d.end_ts, p_now), p_to)
                                  - greatest(d.start_ts, p_from))::double precision AS s
          FROM downtime_events d
         WHERE d.start_ts < p_to AND (d.end_ts IS NULL OR d.end_ts > p_from)
           AND d.asset LIKE p_asset_like
    ), g AS (
        SELECT k, count(*) AS n, sum(greatest(s, 0)) AS s FROM clipped GROUP BY k
    )
    SELECT g.k, g.n, g.s, g.s / nullif(sum(g.s) OVER (), 0),
           sum(g.s) OVER (ORDER BY g.s DESC, g.k ROWS UNBOUNDED PRECEDING)
               / nullif(sum(g.s) OVER (), 0)
      FROM g ORDER BY g.s DESC, g.k;
END
$$;

CREATE VIEW downtime_pareto_reason AS
SELECT * FROM downtime_pareto(now() - interval '24 hours', now(), 'reason');

CREATE VIEW downtime_pareto_loss AS
SELECT * FROM downtime_pareto(now() - interval '24 hours', now(), 'loss');

-- The six big losses of [p_from, p_to) per asset, in seconds, from the OEE minutes (so they add
-- up with the OEE figures): for every asset,
--   sum(seconds) + good_ideal_s = PBT  (the lost time and the fully productive time).
-- equipment_failure = breakdown; setup_adjustment = setup; idling_minor_stops = minor stops +
-- external (blocked / starved) + idle; unknown = unclassified stops (a seventh row, kept apart
-- rather than hidden in a loss); reduced_speed = APT - ideal time (negative when the ideal cycle
-- time is too slow); process_defects = ideal time of the defective units; reduced_yield is not
-- measured apart (no counter tells start-up rejects from other defects): NULL, its time is in
-- process_defects.
CREATE FUNCTION six_big_losses(p_from timestamptz, p_to timestamptz)
RETURNS TABLE (asset text, loss text, factor text, seconds double precision)
LANGUAGE sql STABLE AS $$
SELECT t.asset, l.loss, l.factor, l.seconds
  FROM oee_totals(p_from, p_to) t
 CROSS JOIN LATERAL (VALUES
        (1, 'equipment_failure', 'availability', t.breakdown_s),
        (2, 'setup_adjustment', 'availability', t.setup_s),
        (3, 'idling_minor_stops', 'performance', t.minor_stop_s + t.external_s + t.idle_s),
        (4, 'reduced_speed', 'performance', t.production_s - t.ideal_s),
        (5, 'process_defects', 'quality', t.ideal_s - t.good_ideal_s),
        (6, 'reduced_yield', 'quality', NULL::double precision),
        (7, 'unknown', 'availability', t.unknown_s)
       ) l(n, loss, factor, seconds)
 ORDER BY t.asset, l.n
$$;

-- MTBF and MTTR of [p_from, p_to), per asset and stop reason, and per asset over all reasons
-- (all_reasons = true, stop_reason NULL). A failure is a downtime event with loss
-- 'equipment_failure' that STARTED in the range. MTTR = mean duration of those failures
-- (closed ones; an open failure counts as a failure but has no repair time yet). MTBF =
-- production time (APT, from the OEE minutes) of the asset in the range / number of failures:
-- the mean running time between failures (time not producing does not count). Only assets and
-- reasons with at least one failure have rows.
CREATE FUNCTION mtbf_mttr(p_from timestamptz, p_to timestamptz)
RETURNS TABLE (
    asset text, stop_reason text, all_reasons boolean, failures bigint, open_failures bigint,
    repair_s double precision, mttr_s double precision, apt_s double precision,
    mtbf_s double precision
) LANGUAGE sql STABLE AS $$
WITH f AS (
    SELECT d.asset, d.stop_reason, grouping(d.stop_reason) = 1 AS all_reasons,
           count(*) AS failures, count(*) FILTER (WHERE d.end_ts IS NULL) AS open_failures,
           sum(d.duration_s) AS repair_s, avg(d.duration_s) AS mttr_s
      FROM downtime_events d
     WHERE d.loss = 'equipment_failure' AND d.start_ts >= p_from AND d.start_ts < p_to
     GROUP BY GROUPING SETS ((d.asset, d.stop_reason), (d.asset))
)
SELECT f.asset, f.stop_reason, f.all_reasons, f.failures, f.open_failures, f.repair_s,
       f.mttr_s, coalesce(t.production_s, 0), coalesce(t.production_s, 0) / f.failures
  FROM f
  LEFT JOIN oee_totals(p_from, p_to) t ON t.asset = f.asset
 ORDER BY f.asset, f.all_reasons DESC, f.failures DESC, f.stop_reason
$$;
