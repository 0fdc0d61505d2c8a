#!/usr/bin/env bash
# EXPLAIN for every filter of /v1/streams and /v1/events, as the store
# (worker/src/store/engine.rs: push_stream_filters, push_event_filters, push_page)
# writes the statements, with values taken from the loaded dataset. Prints Markdown.
#
#   api/benches/explain-queries.sh mysql  [DATABASE]     (default stv3_bench_api)
#   api/benches/explain-queries.sh sqlite FILE
#
# MariaDB's plans are EXPLAIN's table; with ANALYZE=1 they are `ANALYZE` (the plan run,
# with the rows each step really read, r_rows, and the time) instead.
set -euo pipefail

KIND=${1:?mysql or sqlite}
TARGET=${2:-stv3_bench_api}

if [ "$KIND" = mysql ]; then
  q() { mariadb --protocol=tcp -h127.0.0.1 -ustv3 -pstv3 "$TARGET" -N -B -e "$1"; }
  # The store reads at READ COMMITTED (worker/src/store/mysql.rs); plans do not depend on it.
  explain() { mariadb --protocol=tcp -h127.0.0.1 -ustv3 -pstv3 "$TARGET" --table -e "${EXPLAIN_VERB:-EXPLAIN} $1"; }
else
  q() { sqlite3 -batch -noheader "$TARGET" "$1"; }
  explain() { sqlite3 -batch "$TARGET" "EXPLAIN QUERY PLAN $1"; }
fi
[ "${ANALYZE:-0}" = 1 ] && EXPLAIN_VERB=ANALYZE

# Values from the data: an instance with events, the middle of the stored time, an
# id in the middle of each table for the marks.
IID=$(q "SELECT t_string FROM event_trait WHERE name = 'instance_id' AND event_id = (SELECT MAX(id) DIV 2 FROM event)" 2>/dev/null \
  || q "SELECT t_string FROM event_trait WHERE name = 'instance_id' AND event_id = (SELECT MAX(id) / 2 FROM event)")
MID=$(q "SELECT (MIN(generated) + MAX(generated)) DIV 2 FROM event" 2>/dev/null || q "SELECT (MIN(generated) + MAX(generated)) / 2 FROM event")
DAY=86400000000
EMARK=$(q "SELECT MAX(id) DIV 2 FROM event" 2>/dev/null || q "SELECT MAX(id) / 2 FROM event")
SMARK=$(q "SELECT MAX(id) DIV 2 FROM stream" 2>/dev/null || q "SELECT MAX(id) / 2 FROM stream")
DAY_BEGIN=$(( MID / DAY * DAY ))

STREAM_COLS="id, name, state, state_serial_no, first_event, last_event, expire_timestamp, fire_timestamp, dist_traits, fire_counts, event_count, claim_until, open_key"
EVENT_COLS="e.id, e.message_id, et.name, e.generated"
# EVENTS_JOIN=JOIN shows the plans of the inner join the store used before issue 7.
EVENTS_FROM="FROM event e ${EVENTS_JOIN:-LEFT JOIN} event_type et ON et.id = e.event_type_id WHERE 1 = 1"
TRAIT="AND EXISTS (SELECT 1 FROM event_trait t WHERE t.event_id = e.id AND t.name ="
DIST="AND EXISTS (SELECT 1 FROM stream_dist_trait d WHERE d.stream_id = stream.id AND d.name ="

plan() {
  local title=$1 sql=$2
  printf '### %s\n\n```sql\n%s\n```\n\n```\n' "$title" "$sql"
  local t0 t1
  t0=$(date +%s%N)
  explain "$sql"
  t1=$(date +%s%N)
  printf '```\n\n'
  # ANALYZE runs the statement: its wall time (client included) is worth showing.
  [ -n "${EXPLAIN_VERB:-}" ] && printf '%s: %d ms\n\n' "${EXPLAIN_VERB}" $(( (t1 - t0) / 1000000 ))
  return 0
}

echo "Values: instance_id = $IID, mid-time = $MID µs, event mark = $EMARK, stream mark = $SMARK."
echo
echo "## Streams (\`/v1/streams\`, \`/v1/streams/count\`)"
echo
plan "streams?limit=200" "SELECT $STREAM_COLS FROM stream WHERE 1 = 1 ORDER BY id DESC LIMIT 200"
plan "streams?state=completed" "SELECT $STREAM_COLS FROM stream WHERE 1 = 1 AND state = 6 ORDER BY id DESC LIMIT 200"
plan "streams?state=active (the few)" "SELECT $STREAM_COLS FROM stream WHERE 1 = 1 AND state = 1 ORDER BY id DESC LIMIT 200"
plan "streams?trigger_name=test_trigger" "SELECT $STREAM_COLS FROM stream WHERE 1 = 1 AND name = 'test_trigger' ORDER BY id DESC LIMIT 200"
plan "streams?trigger_name=test_trigger&state=active" "SELECT $STREAM_COLS FROM stream WHERE 1 = 1 AND state = 1 AND name = 'test_trigger' ORDER BY id DESC LIMIT 200"
plan "streams?older_than=(mid-time)" "SELECT $STREAM_COLS FROM stream WHERE 1 = 1 AND first_event < $MID ORDER BY id DESC LIMIT 200"
plan "streams?younger_than=(mid-time)" "SELECT $STREAM_COLS FROM stream WHERE 1 = 1 AND last_event > $MID ORDER BY id DESC LIMIT 200"
plan "streams?older_than=…&younger_than=… (one day)" "SELECT $STREAM_COLS FROM stream WHERE 1 = 1 AND first_event < $((MID + DAY / 2)) AND last_event > $((MID - DAY / 2)) ORDER BY id DESC LIMIT 200"
plan "streams?distinguishing_traits=instance_id:(id)" "SELECT $STREAM_COLS FROM stream WHERE 1 = 1 $DIST 'instance_id' AND (1 = 0 OR (d.dt_string = '$IID'))) ORDER BY id DESC LIMIT 200"
plan "streams?distinguishing_traits=timestamp:(a day) — text, datetime and range readings" "SELECT $STREAM_COLS FROM stream WHERE 1 = 1 $DIST 'timestamp' AND (1 = 0 OR (d.dt_string = 'x') OR (d.dt_datetime = $DAY_BEGIN OR (d.dt_begin <= $DAY_BEGIN AND d.dt_end > $DAY_BEGIN)))) ORDER BY id DESC LIMIT 200"
plan "streams?mark=(id) (descending page)" "SELECT $STREAM_COLS FROM stream WHERE 1 = 1 AND id < $SMARK ORDER BY id DESC LIMIT 200"
plan "streams?mark=+(id) (ascending page)" "SELECT $STREAM_COLS FROM stream WHERE 1 = 1 AND id > $SMARK ORDER BY id ASC LIMIT 200"
plan "streams?state=completed&mark=(id)" "SELECT $STREAM_COLS FROM stream WHERE 1 = 1 AND state = 6 AND id < $SMARK ORDER BY id DESC LIMIT 200"
plan "streams/count" "SELECT COUNT(*) FROM stream WHERE 1 = 1"
plan "streams/count?state=completed" "SELECT COUNT(*) FROM stream WHERE 1 = 1 AND state = 6"
plan "streams/count?trigger_name=test_trigger&state=error" "SELECT COUNT(*) FROM stream WHERE 1 = 1 AND state = 4 AND name = 'test_trigger'"
plan "streams/count?distinguishing_traits=instance_id:(id)" "SELECT COUNT(*) FROM stream WHERE 1 = 1 $DIST 'instance_id' AND (1 = 0 OR (d.dt_string = '$IID')))"

echo "## Events (\`/v1/events\`, \`/v1/events/count\`)"
echo
plan "events?limit=200" "SELECT $EVENT_COLS $EVENTS_FROM ORDER BY e.id DESC LIMIT 200"
plan "events?traits=instance_id:(id)" "SELECT $EVENT_COLS $EVENTS_FROM $TRAIT 'instance_id' AND (1 = 0 OR t.t_string = '$IID')) ORDER BY e.id DESC LIMIT 200"
plan "then the page's traits (one statement per page)" "SELECT event_id, name, type, t_string, t_int, t_float, t_datetime FROM event_trait WHERE event_id IN ($EMARK, $((EMARK + 1)), $((EMARK + 2)))"
plan "events?event_name=compute.instance.update" "SELECT $EVENT_COLS $EVENTS_FROM AND et.name = 'compute.instance.update' ORDER BY e.id DESC LIMIT 200"
plan "events?event_name=compute.instance.delete.end (rarer)" "SELECT $EVENT_COLS $EVENTS_FROM AND et.name = 'compute.instance.delete.end' ORDER BY e.id DESC LIMIT 200"
plan "events?from_datetime=…&to_datetime=… (one hour)" "SELECT $EVENT_COLS $EVENTS_FROM AND e.generated > $MID AND e.generated <= $((MID + 3600000000)) ORDER BY e.id DESC LIMIT 200"
plan "events?from_datetime=(mid-time)" "SELECT $EVENT_COLS $EVENTS_FROM AND e.generated > $MID ORDER BY e.id DESC LIMIT 200"
plan "events?to_datetime=(mid-time)" "SELECT $EVENT_COLS $EVENTS_FROM AND e.generated <= $MID ORDER BY e.id DESC LIMIT 200"
# memory_mb reads as int and float; the store first probes which columns hold
# memory_mb at all (only t_int) and keeps that reading (SqlStore::stored_readings).
plan "the probe of an untyped filter's readings" "SELECT 1, EXISTS (SELECT 1 FROM event_trait WHERE name = 'memory_mb' AND t_float IS NOT NULL), EXISTS (SELECT 1 FROM event_trait WHERE name = 'memory_mb' AND t_int IS NOT NULL)"
plan "events?traits=memory_mb<1024 without that probe (both readings: as before issue 7)" "SELECT $EVENT_COLS $EVENTS_FROM $TRAIT 'memory_mb' AND (1 = 0 OR t.t_int < 1024 OR t.t_float < 1024)) ORDER BY e.id DESC LIMIT 200"
plan "events?traits=memory_mb>=4096" "SELECT $EVENT_COLS $EVENTS_FROM $TRAIT 'memory_mb' AND (1 = 0 OR t.t_int >= 4096)) ORDER BY e.id DESC LIMIT 200"
plan "events?traits=memory_mb<1024" "SELECT $EVENT_COLS $EVENTS_FROM $TRAIT 'memory_mb' AND (1 = 0 OR t.t_int < 1024)) ORDER BY e.id DESC LIMIT 200"
plan "events?traits=memory_mb>512" "SELECT $EVENT_COLS $EVENTS_FROM $TRAIT 'memory_mb' AND (1 = 0 OR t.t_int > 512)) ORDER BY e.id DESC LIMIT 200"
plan "events?traits=memory_mb<=512" "SELECT $EVENT_COLS $EVENTS_FROM $TRAIT 'memory_mb' AND (1 = 0 OR t.t_int <= 512)) ORDER BY e.id DESC LIMIT 200"
plan "events?traits=state!=active" "SELECT $EVENT_COLS $EVENTS_FROM $TRAIT 'state' AND (1 = 0 OR t.t_string <> 'active')) ORDER BY e.id DESC LIMIT 200"
plan "events?traits=launched_at>=(a datetime)" "SELECT $EVENT_COLS $EVENTS_FROM $TRAIT 'launched_at' AND (1 = 0 OR t.t_datetime >= $MID)) ORDER BY e.id DESC LIMIT 200"
plan "events?event_name=compute.instance.update&traits=instance_id:(id)" "SELECT $EVENT_COLS $EVENTS_FROM AND et.name = 'compute.instance.update' $TRAIT 'instance_id' AND (1 = 0 OR t.t_string = '$IID')) ORDER BY e.id DESC LIMIT 200"
plan "events?traits=instance_id:(id)&mark=(id)" "SELECT $EVENT_COLS $EVENTS_FROM $TRAIT 'instance_id' AND (1 = 0 OR t.t_string = '$IID')) AND e.id < $EMARK ORDER BY e.id DESC LIMIT 200"
plan "events?mark=(id) (descending page)" "SELECT $EVENT_COLS $EVENTS_FROM AND e.id < $EMARK ORDER BY e.id DESC LIMIT 200"
plan "events?mark=+(id) (ascending page)" "SELECT $EVENT_COLS $EVENTS_FROM AND e.id > $EMARK ORDER BY e.id ASC LIMIT 200"
plan "events/count" "SELECT COUNT(*) $EVENTS_FROM"
plan "events/count?traits=instance_id:(id)" "SELECT COUNT(*) $EVENTS_FROM $TRAIT 'instance_id' AND (1 = 0 OR t.t_string = '$IID'))"
plan "events/count?event_name=compute.instance.update" "SELECT COUNT(*) $EVENTS_FROM AND et.name = 'compute.instance.update'"
plan "events/count?from_datetime=…&to_datetime=… (one hour)" "SELECT COUNT(*) $EVENTS_FROM AND e.generated > $MID AND e.generated <= $((MID + 3600000000))"
