-- The winchester schema (MySQL/MariaDB; migrations/sqlite has the same tables).
--
-- Datetimes are BIGINT microseconds since the Unix epoch, UTC. Trait type codes:
-- 1 text, 2 int, 3 float, 4 datetime (the original's), 5 time range (distinguishing
-- traits only). Every table is InnoDB, utf8mb4 with the binary collation: message_id,
-- names and trait values compare exactly and case-sensitively.
--
-- event_type        name → id (cached in memory by the store).
-- event             one row per stored notification; message_id is UNIQUE, which is
--                   how duplicates are recognised. Indexes serve time-range listing
--                   (generated) and by-type listing (event_type_id, generated).
-- event_trait       one row per trait, its value in the column of its type (full text,
--                   no truncation; its index covers the first 191 characters). The
--                   primary key (event_id, name) keeps an event's traits together.
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

CREATE TABLE event_type (
    id BIGINT NOT NULL AUTO_INCREMENT,
    name VARCHAR(255) NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY ux_event_type_name (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE event (
    id BIGINT NOT NULL AUTO_INCREMENT,
    message_id VARCHAR(255) NOT NULL,
    event_type_id BIGINT NOT NULL,
    generated BIGINT NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY ux_event_message_id (message_id),
    KEY ix_event_generated (generated),
    KEY ix_event_type_generated (event_type_id, generated)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE event_trait (
    event_id BIGINT NOT NULL,
    name VARCHAR(255) NOT NULL,
    type TINYINT NOT NULL,
    t_string MEDIUMTEXT NULL,
    t_int BIGINT NULL,
    t_float DOUBLE NULL,
    t_datetime BIGINT NULL,
    PRIMARY KEY (event_id, name),
    KEY ix_event_trait_string (name, t_string(191)),
    KEY ix_event_trait_int (name, t_int),
    KEY ix_event_trait_float (name, t_float),
    KEY ix_event_trait_datetime (name, t_datetime)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE stream (
    id BIGINT NOT NULL AUTO_INCREMENT,
    name VARCHAR(255) NOT NULL,
    state SMALLINT NOT NULL,
    state_serial_no BIGINT NOT NULL DEFAULT 0,
    first_event BIGINT NOT NULL,
    last_event BIGINT NOT NULL,
    expire_timestamp BIGINT NULL,
    fire_timestamp BIGINT NULL,
    open_key CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
    dist_traits MEDIUMTEXT NOT NULL,
    fire_counts VARCHAR(1024) NOT NULL,
    event_count BIGINT NOT NULL,
    claim_until BIGINT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY ux_stream_open_key (open_key),
    KEY ix_stream_state_fire (state, fire_timestamp),
    KEY ix_stream_state_expire (state, expire_timestamp),
    KEY ix_stream_name_state (name, state),
    KEY ix_stream_first_event (first_event),
    KEY ix_stream_last_event (last_event)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE stream_dist_trait (
    stream_id BIGINT NOT NULL,
    name VARCHAR(255) NOT NULL,
    type TINYINT NOT NULL,
    dt_string MEDIUMTEXT NULL,
    dt_int BIGINT NULL,
    dt_float DOUBLE NULL,
    dt_datetime BIGINT NULL,
    dt_begin BIGINT NULL,
    dt_end BIGINT NULL,
    PRIMARY KEY (stream_id, name),
    KEY ix_stream_dist_string (name, dt_string(191)),
    KEY ix_stream_dist_int (name, dt_int),
    KEY ix_stream_dist_float (name, dt_float),
    KEY ix_stream_dist_datetime (name, dt_datetime),
    KEY ix_stream_dist_range (name, dt_begin, dt_end)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE stream_event (
    stream_id BIGINT NOT NULL,
    event_id BIGINT NOT NULL,
    generated BIGINT NOT NULL,
    PRIMARY KEY (stream_id, generated, event_id),
    KEY ix_stream_event_event (event_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
