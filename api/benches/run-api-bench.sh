#!/usr/bin/env bash
# The API benchmark (issue 7), end to end: MariaDB up, the dataset loaded (1,000,000
# events and 100,000 streams from notigen through the engine; skipped when already
# there), stv3-api started on loopback, wrk run against each URL, stv3-api stopped.
# Prints a Markdown table (requests/s, p50, p99 per URL) and keeps wrk's full output
# and the API's log under $OUT.
#
#   api/benches/run-api-bench.sh [--duration 20s] [--connections 16] [--threads 2]
#                                [--plans] (also writes the EXPLAINs: explain-queries.sh)
#                                [--no-load] (measure only: the built stv3-api, the loaded
#                                 database and the id lists of an earlier run)
#                                [--buffer-pool 6G] (MariaDB's InnoDB buffer pool for the
#                                 run, as root over the socket, put back at the end; the
#                                 default 128M holds 2 % of the 5.4 GB event_trait table)
#                                [--console] (the console's pages instead of the REST
#                                 API's listings: issue 16)
#                                [--events N] [--streams N] (the dataset's size; default
#                                 1,000,000 and 100,000)
#
# Environment: STV3_BENCH_API_DATABASE (default
# mysql://stv3:stv3@127.0.0.1:3306/stv3_bench_api), CARGO_TARGET_DIR (default
# ./target), STV3_BENCH_API_PORT (default 18080), STV3_BENCH_API_OUT (where the id lists,
# logs and results go; default $CARGO_TARGET_DIR/api-bench). wrk is installed from Debian's
# packages when missing.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
DURATION=20s
CONNECTIONS=16
THREADS=2
PLANS=0
LOAD=1
POOL=
CONSOLE=0
EVENTS=1000000
STREAMS=100000
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --connections) CONNECTIONS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --plans) PLANS=1; shift ;;
    --no-load) LOAD=0; shift ;;
    --buffer-pool) POOL=$2; shift 2 ;;
    --console) CONSOLE=1; shift ;;
    --events) EVENTS=$2; shift 2 ;;
    --streams) STREAMS=$2; shift 2 ;;
    -h | --help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

DB_URL=${STV3_BENCH_API_DATABASE:-mysql://stv3:stv3@127.0.0.1:3306/stv3_bench_api}
PORT=${STV3_BENCH_API_PORT:-18080}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${STV3_BENCH_API_OUT:-$TARGET/api-bench}
mkdir -p "$OUT"
log() { printf '[api-bench] %s\n' "$*" >&2; }

if ! command -v wrk >/dev/null; then
  log "installing wrk"
  if [ "$(id -u)" -eq 0 ]; then apt-get install -y -qq wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
  else sudo apt-get install -y -qq wrk >/dev/null; fi
fi

case "$DB_URL" in mysql:* | mariadb:*) scripts/services.sh up mariadb ;; esac

if [ "$LOAD" = 1 ]; then
  log "building stv3-api and the loader (release)"
  cargo build --release -q -p stv3-api --bin stv3-api
  cargo bench -q -p stv3-worker --bench api_dataset --no-run
  log "loading the dataset into $(printf '%s' "$DB_URL" | sed -E 's#//([^:]*):[^@]*@#//\1:***@#')"
  cargo bench -q -p stv3-worker --bench api_dataset -- --database "$DB_URL" --ids-out "$OUT/ids" \
    --events "$EVENTS" --streams "$STREAMS" \
    | tee "$OUT/load.log"
fi
grep '^dataset:' "$OUT/load.log" >"$OUT/dataset.txt" || true

# The API, on loopback, until this script ends; on a free port (else wrk would measure
# whatever answers there).
if curl -s -o /dev/null "http://127.0.0.1:$PORT/"; then
  log "127.0.0.1:$PORT is in use; set STV3_BENCH_API_PORT"
  exit 1
fi
"$TARGET/release/stv3-api" --database "$DB_URL" --listen "127.0.0.1:$PORT" >"$OUT/api.log" 2>&1 &
API_PID=$!
trap 'kill "$API_PID" 2>/dev/null || true; wait "$API_PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
  kill -0 "$API_PID" 2>/dev/null || { cat "$OUT/api.log" >&2; exit 1; }
  sleep 0.5
done
curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null || { log "stv3-api is not ready; see $OUT/api.log"; exit 1; }

# The request mixes: one file of paths per scenario (wrk/paths.lua cycles through it).
P=$OUT/paths
mkdir -p "$P"
IDS=$OUT/ids/instance_ids
echo "/v1/streams?limit=200" >"$P/streams"
echo "/v1/streams/count?state=completed" >"$P/streams_count_completed"
sed 's#^#/v1/events?traits=instance_id:#' "$IDS" >"$P/events_by_instance"
sed 's#^#/v1/streams?distinguishing_traits=instance_id:#' "$IDS" >"$P/streams_by_instance"
sed 's#^#/v1/events?event_name=#' "$OUT/ids/event_names" >"$P/events_by_name"
: >"$P/streams_by_state_name"
while read -r trigger; do
  for state in active firing expiring error expire_error completed retry_fire retry_expire; do
    echo "/v1/streams?trigger_name=$trigger&state=$state" >>"$P/streams_by_state_name"
  done
done <"$OUT/ids/trigger_names"
sed 's#^#/v1/events?event_name=compute.instance.update\&traits=instance_id:#' "$IDS" \
  >"$P/events_by_instance_and_name"
echo "/v1/events?limit=200" >"$P/events"

if [ "$CONSOLE" = 1 ]; then
  # The console: each page as people open it; ids vary where the page is about one
  # thing (the first 1,000 streams and events the API lists, the instance ids).
  curl -fsS "http://127.0.0.1:$PORT/v1/streams?limit=1000" \
    | python3 -c 'import json,sys; [print("/ui/streams/%d" % s["id"]) for s in json.load(sys.stdin)]' >"$P/ui_stream"
  curl -fsS "http://127.0.0.1:$PORT/v1/events?limit=1000" \
    | python3 -c 'import json,sys; [print("/ui/events/" + e["message_id"]) for e in json.load(sys.stdin)]' >"$P/ui_event"
  sed 's#^#/ui/lookup?q=#' "$IDS" >"$P/ui_lookup"
  echo "/ui/" >"$P/ui_overview"
  echo "/ui/?range=day" >"$P/ui_overview_day"
  echo "/ui/streams?state=active" >"$P/ui_streams"
  : >"$P/ui_streams_state"
  for state in active firing expiring error expire_error completed retry_fire retry_expire; do
    echo "/ui/streams?state=$state" >>"$P/ui_streams_state"
  done
  echo "/ui/usage" >"$P/ui_usage"
  echo "/ui/event-types" >"$P/ui_event_types"
  sed 's#^#/ui/event-types?type=#' "$OUT/ids/event_names" >"$P/ui_event_type"
  SCENARIOS=(
    "ui_overview|/ui/ (overview, last hour)"
    "ui_overview_day|/ui/?range=day (overview, last 24 h)"
    "ui_streams|/ui/streams?state=active"
    "ui_streams_state|/ui/streams?state=<s> (states vary)"
    "ui_stream|/ui/streams/<id> (ids vary)"
    "ui_lookup|/ui/lookup?q=<instance_id> (ids vary)"
    "ui_event|/ui/events/<message_id> (ids vary)"
    "ui_usage|/ui/usage"
    "ui_event_types|/ui/event-types"
    "ui_event_type|/ui/event-types?type=<type> (types vary)"
  )
else
SCENARIOS=(
  "streams|/v1/streams?limit=200"
  "events_by_instance|/v1/events?traits=instance_id:<id> (ids vary)"
  "streams_count_completed|/v1/streams/count?state=completed"
  "events|/v1/events?limit=200"
  "events_by_name|/v1/events?event_name=<type> (types vary)"
  "events_by_instance_and_name|/v1/events?event_name=compute.instance.update&traits=instance_id:<id>"
  "streams_by_state_name|/v1/streams?trigger_name=<t>&state=<s> (states vary)"
  "streams_by_instance|/v1/streams?distinguishing_traits=instance_id:<id>"
)
fi

BASE="http://127.0.0.1:$PORT"
if [ -n "$POOL" ]; then
  root_sql() { mariadb --protocol=socket --socket=/run/mysqld/mysqld.sock -uroot -N -B -e "$1"; }
  OLD_POOL=$(root_sql "SELECT @@innodb_buffer_pool_size")
  log "InnoDB buffer pool $POOL for the run (was $OLD_POOL bytes)"
  root_sql "SET GLOBAL innodb_buffer_pool_size = $(numfmt --from=iec "$POOL")"
  trap 'kill "$API_PID" 2>/dev/null || true; wait "$API_PID" 2>/dev/null || true; root_sql "SET GLOBAL innodb_buffer_pool_size = $OLD_POOL" || true' EXIT
  log "filling the pool: every instance's events once"
  wrk -t2 -c8 -d40s -s api/benches/wrk/paths.lua "$BASE" -- "$P/events_by_instance" >/dev/null
fi
log "warming up"
for s in "${SCENARIOS[@]}"; do
  wrk -t1 -c2 -d3s -s api/benches/wrk/paths.lua "$BASE" -- "$P/${s%%|*}" >/dev/null
done

{
  echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, stv3-api on 127.0.0.1:$PORT over $(sed 's/^dataset: //' "$OUT/dataset.txt"), InnoDB buffer pool ${POOL:-as configured}"
  echo
  echo "| URL | requests/s | p50 | p99 | non-2xx |"
  echo "|---|---|---|---|---|"
} >"$OUT/results.md"
for s in "${SCENARIOS[@]}"; do
  name=${s%%|*}
  label=${s#*|}
  log "wrk $label"
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s api/benches/wrk/paths.lua "$BASE" -- "$P/$name" \
    >"$OUT/wrk-$name.txt"
  line=$(grep '^RESULT' "$OUT/wrk-$name.txt")
  val() { printf '%s\n' "$line" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
  printf '| `%s` | %.0f | %s ms | %s ms | %s |\n' "$label" "$(val rps)" "$(val p50_ms)" "$(val p99_ms)" "$(val non2xx)" \
    >>"$OUT/results.md"
done
cat "$OUT/results.md"

if [ "$PLANS" = 1 ]; then
  case "$DB_URL" in
    mysql:* | mariadb:*) api/benches/explain-queries.sh mysql "${DB_URL##*/}" >"$OUT/plans.md" ;;
    sqlite:*) api/benches/explain-queries.sh sqlite "${DB_URL#sqlite://}" >"$OUT/plans.md" ;;
  esac
  log "plans in $OUT/plans.md"
fi
