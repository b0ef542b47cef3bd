-- Alerts (docs/sql.md, "Alerts"): what is active, what happened recently, and acknowledging.

DROP VIEW IF EXISTS alerts_active, alerts_recent CASCADE;
DROP FUNCTION IF EXISTS ack_alert CASCADE;

-- Active alerts, the most severe and the oldest first.
CREATE VIEW alerts_active AS
SELECT a.alert_id, a.rule, a.asset, s.line, s.site, a.severity, a.message, a.raised_ts,
       a.updated_ts, extract(epoch FROM now() - a.raised_ts)::double precision AS active_s,
       a.acked_by IS NOT NULL AS acked, a.acked_by, a.acked_at, a.evidence, a.revision
  FROM alerts a
  LEFT JOIN assets s ON s.asset = a.asset
 WHERE a.status = 'active'
 ORDER BY CASE a.severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, a.raised_ts;

-- Alerts raised, updated or cleared in the last 7 days, and every active one; newest first.
CREATE VIEW alerts_recent AS
SELECT a.alert_id, a.rule, a.asset, s.line, s.site, a.severity, a.status, a.message,
       a.raised_ts, a.updated_ts, a.cleared_ts,
       extract(epoch FROM coalesce(a.cleared_ts, now()) - a.raised_ts)::double precision
           AS duration_s,
       a.acked_by IS NOT NULL AS acked, a.acked_by, a.acked_at, a.evidence, a.revision
  FROM alerts a
  LEFT JOIN assets s ON s.asset = a.asset
 WHERE a.status = 'active' OR a.updated_ts >= now() - interval '7 days'
 ORDER BY a.raised_ts DESC;

-- Acknowledge an alert: sets acked_by / acked_at once (the first acknowledgement stands).
-- Returns true when this call acknowledged it, false when it was already acknowledged or does
-- not exist. The flow never writes these two columns, so an acknowledgement survives updates.
CREATE FUNCTION ack_alert(p_alert_id uuid, p_by text) RETURNS boolean
LANGUAGE sql VOLATILE AS $$
WITH acked AS (
    UPDATE alerts SET acked_by = p_by, acked_at = now()
     WHERE alert_id = p_alert_id AND acked_by IS NULL
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM acked)
$$;
