-- Maintained counters for the console (issue 16): the same tables as
-- migrations/mysql/0004_console_tallies.sql, which says what each holds.

CREATE TABLE event_type_total (
    event_type_id INTEGER NOT NULL,
    shard INTEGER NOT NULL,
    events INTEGER NOT NULL,
    PRIMARY KEY (event_type_id, shard)
) WITHOUT ROWID;

CREATE TABLE event_type_day (
    event_type_id INTEGER NOT NULL,
    day INTEGER NOT NULL,
    shard INTEGER NOT NULL,
    events INTEGER NOT NULL,
    PRIMARY KEY (event_type_id, day, shard)
) WITHOUT ROWID;

CREATE TABLE event_minute (
    minute INTEGER NOT NULL,
    shard INTEGER NOT NULL,
    events INTEGER NOT NULL,
    PRIMARY KEY (minute, shard)
) WITHOUT ROWID;

CREATE TABLE event_type_trait (
    event_type_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    type INTEGER NOT NULL,
    PRIMARY KEY (event_type_id, name, type)
) WITHOUT ROWID;

CREATE TABLE stream_tally (
    minute INTEGER NOT NULL,
    outcome INTEGER NOT NULL,
    shard INTEGER NOT NULL,
    runs INTEGER NOT NULL,
    PRIMARY KEY (minute, outcome, shard)
) WITHOUT ROWID;

CREATE TABLE collector_seen (
    name TEXT NOT NULL PRIMARY KEY,
    last_seen INTEGER NOT NULL,
    last_generated INTEGER NOT NULL
) WITHOUT ROWID;

INSERT INTO event_type_total (event_type_id, shard, events)
SELECT event_type_id, 0, COUNT(*) FROM event GROUP BY event_type_id;

-- Integer division truncates towards zero; `generated` is after 1970.
INSERT INTO event_type_day (event_type_id, day, shard, events)
SELECT event_type_id, (generated / 86400000000) * 86400000000 AS d, 0, COUNT(*)
FROM event GROUP BY event_type_id, d;

INSERT INTO event_minute (minute, shard, events)
SELECT (generated / 60000000) * 60000000 AS m, 0, COUNT(*) FROM event GROUP BY m;

INSERT INTO event_type_trait (event_type_id, name, type)
SELECT DISTINCT r.event_type_id, t.name, t.type
FROM (
    SELECT id, event_type_id,
           ROW_NUMBER() OVER (PARTITION BY event_type_id ORDER BY id DESC) AS nth
    FROM event
) r
JOIN event_trait t ON t.event_id = r.id
WHERE r.nth <= 1000;
