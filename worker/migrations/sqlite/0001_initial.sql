-- The winchester schema (SQLite; migrations/mysql has the same tables for MySQL/MariaDB).
--
-- Datetimes are INTEGER microseconds since the Unix epoch, UTC. Trait type codes:
-- 1 text, 2 int, 3 float, 4 datetime (the original's), 5 time range (distinguishing
-- traits only).
--
-- event_type        name → id (cached in memory by the store).
-- event             one row per stored notification; message_id is UNIQUE, which is
--                   how duplicates are recognised. Indexes serve time-range listing
--                   (generated) and by-type listing (event_type_id, generated).
-- event_trait       one row per trait, its value in the column of its type (full text,
--                   no truncation). Partial indexes per typed column serve trait filters
--                   (`name = ? AND t_int > ?`): a trait is indexed once, by its type.
-- stream            the original's stream plus: open_key (hex SHA-256 of trigger name
--                   and distinguishing traits) set while the stream collects events and
--                   NULL after; UNIQUE, so at most one open stream per key exists, even
--                   with racing ingesters. dist_traits is the JSON of the distinguishing
--                   traits (reads need no join), fire_counts the per-criterion counts
--                   ("1,0,3"), event_count the stream's length, claim_until the lease of
--                   a firing/expiring claim. Indexes serve claims (state, fire/expire
--                   timestamp), API listings (name, state), (first_event), (last_event).
-- stream_dist_trait the distinguishing traits again, typed, for the API's filters.
-- stream_event      membership; the primary key (stream_id, generated, event_id) hands a
--                   stream's events back in time order; (event_id) serves trims.
--
-- AUTOINCREMENT keeps ids monotonic (never reused after trims), which the keyset pages
-- of the API rely on.

CREATE TABLE event_type (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE
);

CREATE TABLE event (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL UNIQUE,
    event_type_id INTEGER NOT NULL,
    generated INTEGER NOT NULL
);
CREATE INDEX ix_event_generated ON event (generated);
CREATE INDEX ix_event_type_generated ON event (event_type_id, generated);

CREATE TABLE event_trait (
    event_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    type INTEGER NOT NULL,
    t_string TEXT,
    t_int INTEGER,
    t_float REAL,
    t_datetime INTEGER,
    PRIMARY KEY (event_id, name)
);
CREATE INDEX ix_event_trait_string ON event_trait (name, t_string) WHERE t_string IS NOT NULL;
CREATE INDEX ix_event_trait_int ON event_trait (name, t_int) WHERE t_int IS NOT NULL;
CREATE INDEX ix_event_trait_float ON event_trait (name, t_float) WHERE t_float IS NOT NULL;
CREATE INDEX ix_event_trait_datetime ON event_trait (name, t_datetime) WHERE t_datetime IS NOT NULL;

CREATE TABLE stream (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    state INTEGER NOT NULL,
    state_serial_no INTEGER NOT NULL DEFAULT 0,
    first_event INTEGER NOT NULL,
    last_event INTEGER NOT NULL,
    expire_timestamp INTEGER,
    fire_timestamp INTEGER,
    open_key TEXT UNIQUE,
    dist_traits TEXT NOT NULL,
    fire_counts TEXT NOT NULL,
    event_count INTEGER NOT NULL,
    claim_until INTEGER
);
CREATE INDEX ix_stream_state_fire ON stream (state, fire_timestamp);
CREATE INDEX ix_stream_state_expire ON stream (state, expire_timestamp);
CREATE INDEX ix_stream_name_state ON stream (name, state);
CREATE INDEX ix_stream_first_event ON stream (first_event);
CREATE INDEX ix_stream_last_event ON stream (last_event);

CREATE TABLE stream_dist_trait (
    stream_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    type INTEGER NOT NULL,
    dt_string TEXT,
    dt_int INTEGER,
    dt_float REAL,
    dt_datetime INTEGER,
    dt_begin INTEGER,
    dt_end INTEGER,
    PRIMARY KEY (stream_id, name)
);
CREATE INDEX ix_stream_dist_string ON stream_dist_trait (name, dt_string) WHERE dt_string IS NOT NULL;
CREATE INDEX ix_stream_dist_int ON stream_dist_trait (name, dt_int) WHERE dt_int IS NOT NULL;
CREATE INDEX ix_stream_dist_float ON stream_dist_trait (name, dt_float) WHERE dt_float IS NOT NULL;
CREATE INDEX ix_stream_dist_datetime ON stream_dist_trait (name, dt_datetime) WHERE dt_datetime IS NOT NULL;
CREATE INDEX ix_stream_dist_range ON stream_dist_trait (name, dt_begin, dt_end) WHERE dt_begin IS NOT NULL;

CREATE TABLE stream_event (
    stream_id INTEGER NOT NULL,
    event_id INTEGER NOT NULL,
    generated INTEGER NOT NULL,
    PRIMARY KEY (stream_id, generated, event_id)
) WITHOUT ROWID;
CREATE INDEX ix_stream_event_event ON stream_event (event_id);
