-- Maintained counters for the console (issue 16; worker/src/store/tally.rs writes and
-- reads them). Every page of the console answers from these or from bounded queries,
-- never from a scan of the event or stream tables.
--
-- event_type_total  events stored per event type;
-- event_type_day    … per event type and UTC day of `generated` (day = µs at 00:00);
-- event_minute      … per minute of `generated`;
--                   the three are written by the ingest transaction and taken back by
--                   the trim; `shard` spreads concurrent writers of one key over
--                   several rows (readers sum them).
-- event_type_trait  every (event type, trait name, trait type) stored;
-- stream_tally      pipeline runs finished per wall-clock minute, by outcome (1 fired,
--                   2 expired, 3 fire error, 4 expire error, 5 retried);
-- collector_seen    when each collector (a cell's yagi-event) last stored events, and
--                   the newest `generated` among them.
--
-- The counters are filled from what is stored when the migration runs. Trait
-- signatures come from the latest 1,000 events of each type (a scan of every trait
-- row would take minutes on a large region); later events add theirs as they come.

CREATE TABLE event_type_total (
    event_type_id BIGINT NOT NULL,
    shard SMALLINT NOT NULL,
    events BIGINT NOT NULL,
    PRIMARY KEY (event_type_id, shard)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE event_type_day (
    event_type_id BIGINT NOT NULL,
    day BIGINT NOT NULL,
    shard SMALLINT NOT NULL,
    events BIGINT NOT NULL,
    PRIMARY KEY (event_type_id, day, shard)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE event_minute (
    minute BIGINT NOT NULL,
    shard SMALLINT NOT NULL,
    events BIGINT NOT NULL,
    PRIMARY KEY (minute, shard)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE event_type_trait (
    event_type_id BIGINT NOT NULL,
    name VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL,
    type TINYINT NOT NULL,
    PRIMARY KEY (event_type_id, name, type)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE stream_tally (
    minute BIGINT NOT NULL,
    outcome TINYINT NOT NULL,
    shard SMALLINT NOT NULL,
    runs BIGINT NOT NULL,
    PRIMARY KEY (minute, outcome, shard)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE collector_seen (
    name VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL,
    last_seen BIGINT NOT NULL,
    last_generated BIGINT NOT NULL,
    PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

INSERT INTO event_type_total (event_type_id, shard, events)
SELECT event_type_id, 0, COUNT(*) FROM event GROUP BY event_type_id;

INSERT INTO event_type_day (event_type_id, day, shard, events)
SELECT event_type_id, FLOOR(generated / 86400000000) * 86400000000 AS d, 0, COUNT(*)
FROM event GROUP BY event_type_id, d;

INSERT INTO event_minute (minute, shard, events)
SELECT FLOOR(generated / 60000000) * 60000000 AS m, 0, COUNT(*) FROM event GROUP BY m;

INSERT INTO event_type_trait (event_type_id, name, type)
SELECT DISTINCT r.event_type_id, t.name, t.type
FROM (
    SELECT id, event_type_id,
           ROW_NUMBER() OVER (PARTITION BY event_type_id ORDER BY id DESC) AS nth
    FROM event
) r
JOIN event_trait t ON t.event_id = r.id
WHERE r.nth <= 1000;
