-- Dead letters (docs/sql.md, "Dead letters"): hourly counts by reason and source topic.

DROP VIEW IF EXISTS dead_letters_by_reason CASCADE;

-- `reason` is the text before its first ':' (e.g. 'invalid JSON', 'does not match the
-- contract'); topic is NULL for dead letters not read from Kafka (e.g. from the OPC UA
-- connector, whose origin is the node id).
CREATE VIEW dead_letters_by_reason AS
SELECT time_bucket('1 hour', received_ts) AS hour,
       split_part(reason, ':', 1) AS reason,
       topic,
       count(*) AS dead_letters,
       min(received_ts) AS first_ts,
       max(received_ts) AS last_ts,
       sum(payload_size) AS payload_bytes
  FROM dead_letters
 GROUP BY 1, 2, 3;
