-- Message ids and event type names compare exactly (issue 14).
--
-- utf8mb4_bin is a PAD SPACE collation in MariaDB: 'X' and 'X ' are equal to its
-- unique indexes, while the engine (and SQLite) tell them apart. Two notifications
-- whose ids differ only by trailing spaces then made the batch fail with a duplicate
-- key the engine could not explain, for good. utf8mb4_nopad_bin compares every byte,
-- trailing spaces included, like the engine does. (MariaDB 10.2 and later; MySQL 8's
-- equivalent is utf8mb4_0900_bin.)

ALTER TABLE event
    MODIFY message_id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL;
ALTER TABLE event_type
    MODIFY name VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL;
