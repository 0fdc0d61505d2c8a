-- Indexes for the API's listings (issue 7; plans in docs/query-plans.md).
--
-- The API pages by id (`ORDER BY id DESC LIMIT n`, marks are ids). An equality filter
-- is only as good as an index that holds its matches in id order: then a page reads
-- its n rows and stops. The index on event types orders by time
-- (ix_event_type_generated), so a page of a rare event type sorted every event of the
-- type first, and one of a common type walked the table by id looking for them.
--
-- ix_event_type_id   /v1/events?event_name=…  (event_type_id, id)
--
-- Not added: (state, id) on stream. It served state-only pages, but with it MariaDB
-- answered trigger_name + state by intersecting it with ix_stream_name_state (two
-- ranges of every completed stream, 150 ms) instead of walking ix_stream_name_state,
-- which already holds each (name, state) in id order. State-only pages do well
-- without it: a common state is found walking the table by id, a rare one through
-- ix_stream_state_fire.

ALTER TABLE event ADD KEY ix_event_type_id (event_type_id, id);
