-- Data quality (issue 6; docs/sql.md, "Data quality"): KPIs per asset and line, suite status
-- over time, failing expectations, dead letters by reason. Read-only functions over the quality
-- flow's tables (sql/003_quality.sql: dq_results, dq_asset_minutes, dq_settings), oee_minutes
-- and its roll-ups, and dead_letters.
--
-- Repeatable: re-applied on every migrate, dropped and re-created so a changed signature or
-- column list applies. dq_coverage_threshold(), oee_elapsed_s() and the coverage / trustworthy
-- columns of the OEE views live in 010_oee.sql: the views need them and 010 is applied first.
--
-- Every function takes a half-open range [p_from, p_to); every ratio is NULL (not 0, not 1)
-- when its denominator is 0, so an empty range gives NULLs, never an error or a fake 100 %.

DROP FUNCTION IF EXISTS dq_kpis CASCADE;
DROP FUNCTION IF EXISTS line_dq_kpis CASCADE;
DROP FUNCTION IF EXISTS dq_suite_status CASCADE;
DROP FUNCTION IF EXISTS dq_failures CASCADE;
DROP FUNCTION IF EXISTS dead_letter_reasons CASCADE;

-- Per asset: every asset of the plant model (`assets`) and every other asset with OEE minutes
-- or quality counts in the range.
--   coverage        known seconds ÷ elapsed seconds: Σ (60 − unknown_s) of the asset's
--                   oee_minutes in the range ÷ oee_elapsed_s over the minutes of the range (a
--                   range reaching past the newest minute written is judged on its elapsed part,
--                   as the OEE views do). An asset without a minute in the range: 0.
--   unknown_s       Σ unknown_s of those minutes.
--   staleness_s     p_to − the newest source timestamp of the asset's events, taken from its
--                   last ingest minute before p_to that had any (negative: source clock ahead).
--   skew_s_p50      median over the range's ingest minutes of each minute's median skew
--                   (ingest_ts − ts in seconds; negative: the source clock is ahead).
--   skew_s_max      the largest skew of any event in the range (skew_s_min: the smallest).
--   pv_bad_share, pv_uncertain_share   process values with OPC UA status Bad / Uncertain ÷ all
--                   process values of the asset in the range.
--   events, rejected   valid events and messages of the asset the contract rejected.
--   dead_letter_rate   rejected ÷ (events + rejected).
-- Ranges: coverage and unknown_s by the minutes' source time (oee_minutes.ts); the counts, skews
-- and shares by ingest minute (dq_asset_minutes.ts).
CREATE FUNCTION dq_kpis(p_from timestamptz, p_to timestamptz)
RETURNS TABLE (
    asset text, line text, coverage double precision, unknown_s double precision,
    staleness_s double precision, skew_s_p50 double precision, skew_s_max double precision,
    pv_bad_share double precision, pv_uncertain_share double precision,
    events bigint, rejected bigint, dead_letter_rate double precision,
    site text, known_s double precision, elapsed_s double precision, minutes bigint,
    skew_s_min double precision, process_values bigint, pv_bad bigint, pv_uncertain bigint,
    last_ts timestamptz, last_ingest_ts timestamptz
) LANGUAGE sql STABLE AS $$
WITH basis AS (
    SELECT b.newest_minute, b.newest_assets,
           -- the minute rows of [p_from, p_to) are those starting in [m_from, m_to)
           time_bucket('1 minute', p_from + interval '1 minute' - interval '1 microsecond')
               AS m_from,
           time_bucket('1 minute', p_to + interval '1 minute' - interval '1 microsecond') AS m_to
      FROM oee_coverage_basis b
), t AS (
    SELECT o.asset, o.minutes, o.unknown_s FROM oee_totals(p_from, p_to) o
), q AS (
    SELECT d.asset, sum(d.events)::bigint AS events, sum(d.rejected)::bigint AS rejected,
           sum(d.pv_good)::bigint AS pv_good, sum(d.pv_uncertain)::bigint AS pv_uncertain,
           sum(d.pv_bad)::bigint AS pv_bad,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY d.skew_s_p50) AS skew_s_p50,
           min(d.skew_s_min) AS skew_s_min, max(d.skew_s_max) AS skew_s_max,
           max(d.last_ts) AS last_ts, max(d.last_ingest_ts) AS last_ingest_ts
      FROM dq_asset_minutes d
     WHERE d.ts >= p_from AND d.ts < p_to
     GROUP BY d.asset
), u AS (
    SELECT a.asset FROM assets a UNION SELECT t.asset FROM t UNION SELECT q.asset FROM q
)
SELECT u.asset, a.line,
       (60.0 * coalesce(t.minutes, 0) - coalesce(t.unknown_s, 0)) / nullif(e.elapsed_s, 0),
       coalesce(t.unknown_s, 0),
       extract(epoch FROM p_to - s.last_ts)::double precision,
       q.skew_s_p50, q.skew_s_max,
       q.pv_bad::double precision / nullif(q.pv_good + q.pv_uncertain + q.pv_bad, 0),
       q.pv_uncertain::double precision / nullif(q.pv_good + q.pv_uncertain + q.pv_bad, 0),
       coalesce(q.events, 0), coalesce(q.rejected, 0),
       q.rejected::double precision / nullif(q.events + q.rejected, 0),
       a.site,
       60.0 * coalesce(t.minutes, 0) - coalesce(t.unknown_s, 0), e.elapsed_s,
       coalesce(t.minutes, 0), q.skew_s_min,
       coalesce(q.pv_good + q.pv_uncertain + q.pv_bad, 0), coalesce(q.pv_bad, 0),
       coalesce(q.pv_uncertain, 0), q.last_ts, q.last_ingest_ts
  FROM u
 CROSS JOIN basis b
  LEFT JOIN assets a ON a.asset = u.asset
  LEFT JOIN t ON t.asset = u.asset
  LEFT JOIN q ON q.asset = u.asset
 CROSS JOIN LATERAL (
        SELECT oee_elapsed_s(1, (u.asset = ANY(b.newest_assets))::int, b.m_from, b.m_to,
                             b.newest_minute) AS elapsed_s) e
  LEFT JOIN LATERAL (
        SELECT d.last_ts FROM dq_asset_minutes d
         WHERE d.asset = u.asset AND d.ts < p_to AND d.last_ts IS NOT NULL
         ORDER BY d.ts DESC LIMIT 1) s ON true
 ORDER BY u.asset
$$;

COMMENT ON FUNCTION dq_kpis IS
    'Data-quality KPIs per asset over [p_from, p_to): coverage, unknown time, staleness, clock '
    'skew, bad/uncertain OPC UA status share, dead-letter rate. docs/sql.md, "Data quality".';

-- Per line (assets.line): the same KPIs from the SUMMED components of the line's assets, never
-- an average of their ratios: coverage = Σ known_s ÷ Σ elapsed_s, shares and the dead-letter
-- rate from the summed counts, skew_s_p50 the median over the line's asset minutes, skew_s_max
-- the largest, staleness_s the stalest asset's (the line is as fresh as its stalest asset).
CREATE FUNCTION line_dq_kpis(p_from timestamptz, p_to timestamptz)
RETURNS TABLE (
    line text, coverage double precision, unknown_s double precision,
    staleness_s double precision, skew_s_p50 double precision, skew_s_max double precision,
    pv_bad_share double precision, pv_uncertain_share double precision,
    events bigint, rejected bigint, dead_letter_rate double precision,
    site text, assets bigint, known_s double precision, elapsed_s double precision,
    minutes bigint, skew_s_min double precision, process_values bigint, pv_bad bigint,
    pv_uncertain bigint, last_ts timestamptz, last_ingest_ts timestamptz
) LANGUAGE sql STABLE AS $$
WITH k AS (
    SELECT * FROM dq_kpis(p_from, p_to) WHERE line IS NOT NULL
), skew AS (
    SELECT a.line, percentile_cont(0.5) WITHIN GROUP (ORDER BY d.skew_s_p50) AS skew_s_p50
      FROM dq_asset_minutes d JOIN assets a ON a.asset = d.asset
     WHERE d.ts >= p_from AND d.ts < p_to AND a.line IS NOT NULL
     GROUP BY a.line
)
SELECT k.line,
       sum(k.known_s) / nullif(sum(k.elapsed_s), 0),
       sum(k.unknown_s),
       max(k.staleness_s),
       min(skew.skew_s_p50),
       max(k.skew_s_max),
       sum(k.pv_bad)::double precision / nullif(sum(k.process_values), 0),
       sum(k.pv_uncertain)::double precision / nullif(sum(k.process_values), 0),
       sum(k.events)::bigint, sum(k.rejected)::bigint,
       sum(k.rejected)::double precision / nullif(sum(k.events) + sum(k.rejected), 0),
       min(k.site), count(*), sum(k.known_s), sum(k.elapsed_s), sum(k.minutes)::bigint,
       min(k.skew_s_min), sum(k.process_values)::bigint, sum(k.pv_bad)::bigint,
       sum(k.pv_uncertain)::bigint, max(k.last_ts), max(k.last_ingest_ts)
  FROM k
  LEFT JOIN skew ON skew.line = k.line
 GROUP BY k.line
 ORDER BY k.line
$$;

COMMENT ON FUNCTION line_dq_kpis IS
    'Data-quality KPIs per line over [p_from, p_to) from the summed components of its assets. '
    'docs/sql.md, "Data quality".';

-- Suites over time: per suite and time bucket (time_bucket(p_bucket, window_start), UTC
-- aligned) the windows validated and the failed ones (a window fails when any expectation of the
-- suite failed on it), from the whole-window rows (asset ''). Every bucket of [p_from, p_to) is
-- listed for every suite validated in the range, with 0 windows where none was validated (the
-- quality flow was not running, or nothing arrived).
CREATE FUNCTION dq_suite_status(p_from timestamptz, p_to timestamptz, p_bucket interval)
RETURNS TABLE (
    suite text, bucket timestamptz, windows bigint, failed_windows bigint,
    checks bigint, failed_checks bigint, unexpected bigint, last_validated_at timestamptz
) LANGUAGE sql STABLE AS $$
WITH w AS (
    SELECT r.suite, r.window_start, count(*) AS checks,
           count(*) FILTER (WHERE NOT r.success) AS failed_checks,
           sum(r.unexpected_count) AS unexpected, max(r.validated_at) AS validated_at
      FROM dq_results r
     WHERE r.asset = '' AND r.window_start >= p_from AND r.window_start < p_to
     GROUP BY r.suite, r.window_start
), b AS (
    SELECT time_bucket(p_bucket, w.window_start) AS bucket, w.suite,
           count(*) AS windows, count(*) FILTER (WHERE w.failed_checks > 0) AS failed_windows,
           sum(w.checks)::bigint AS checks, sum(w.failed_checks)::bigint AS failed_checks,
           sum(w.unexpected)::bigint AS unexpected, max(w.validated_at) AS validated_at
      FROM w GROUP BY 1, 2
)
SELECT s.suite, g.bucket, coalesce(b.windows, 0), coalesce(b.failed_windows, 0),
       coalesce(b.checks, 0), coalesce(b.failed_checks, 0), coalesce(b.unexpected, 0),
       b.validated_at
  FROM (SELECT DISTINCT w.suite FROM w) s
 CROSS JOIN generate_series(time_bucket(p_bucket, p_from), p_to - interval '1 microsecond',
                            p_bucket) g(bucket)
  LEFT JOIN b ON b.suite = s.suite AND b.bucket = g.bucket
 ORDER BY g.bucket, s.suite
$$;

COMMENT ON FUNCTION dq_suite_status IS
    'Per suite and time bucket: windows validated and failed in [p_from, p_to). docs/sql.md.';

-- The failed expectations of [p_from, p_to) (by window_start), newest window first, at most
-- p_limit rows (NULL: all), optionally of one suite: the whole-window row (asset '') and one row
-- per asset among the failing rows, with the GX observed value and up to five examples.
CREATE FUNCTION dq_failures(
    p_from timestamptz, p_to timestamptz, p_limit integer DEFAULT 100, p_suite text DEFAULT NULL
)
RETURNS TABLE (
    window_start timestamptz, window_end timestamptz, suite text, expectation text, asset text,
    element_count bigint, unexpected_count bigint, unexpected_share double precision,
    observed_value jsonb, examples jsonb, expectation_type text, kwargs jsonb,
    validated_at timestamptz
) LANGUAGE sql STABLE AS $$
SELECT r.window_start, r.window_end, r.suite, r.expectation, r.asset, r.element_count,
       r.unexpected_count, r.unexpected_count::double precision / nullif(r.element_count, 0),
       r.observed_value, r.examples, r.expectation_type, r.kwargs, r.validated_at
  FROM dq_results r
 WHERE NOT r.success AND r.window_start >= p_from AND r.window_start < p_to
   AND (p_suite IS NULL OR r.suite = p_suite)
 ORDER BY r.window_start DESC, r.suite, r.expectation, r.asset
 LIMIT p_limit
$$;

COMMENT ON FUNCTION dq_failures IS
    'Failed expectations in [p_from, p_to), newest first, with examples. docs/sql.md.';

-- Dead letters of [p_from, p_to) (by received_ts) by reason class: the reason text up to its
-- first ':' or ' - at ' (e.g. 'invalid JSON', 'does not match the event contract'), with the
-- count, the first and last time, the topics, and the latest one as the example (its full
-- reason, origin and the first 500 characters of its payload). Most frequent first.
CREATE FUNCTION dead_letter_reasons(p_from timestamptz, p_to timestamptz)
RETURNS TABLE (
    reason text, dead_letters bigint, first_ts timestamptz, last_ts timestamptz,
    topics text[], example_reason text, example_origin text, example_payload text,
    example_received_ts timestamptz
) LANGUAGE sql STABLE AS $$
WITH d AS (
    SELECT btrim(split_part(split_part(l.reason, ':', 1), ' - at ', 1)) AS class, l.*
      FROM dead_letters l
     WHERE l.received_ts >= p_from AND l.received_ts < p_to
), c AS (
    SELECT d.class, count(*) AS n, min(d.received_ts) AS first_ts, max(d.received_ts) AS last_ts,
           coalesce(array_agg(DISTINCT d.topic ORDER BY d.topic)
                        FILTER (WHERE d.topic IS NOT NULL), '{}') AS topics
      FROM d GROUP BY d.class
), e AS (
    SELECT DISTINCT ON (d.class) d.class, d.reason, d.origin, left(d.payload, 500) AS payload,
           d.received_ts
      FROM d ORDER BY d.class, d.received_ts DESC, d.event_id
)
SELECT c.class, c.n, c.first_ts, c.last_ts, c.topics, e.reason, e.origin, e.payload,
       e.received_ts
  FROM c JOIN e ON e.class = c.class
 ORDER BY c.n DESC, c.class
$$;

COMMENT ON FUNCTION dead_letter_reasons IS
    'Dead letters in [p_from, p_to) by reason class with the latest example. docs/sql.md.';
