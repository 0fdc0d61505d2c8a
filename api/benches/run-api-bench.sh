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
#
# Environment: STV3_BENCH_API_DATABASE (default
# mysql://stv3:stv3@127.0.0.1:3306/stv3_bench_api), CARGO_TARGET_DIR (default
# ./target), STV3_BENCH_API_PORT (default 18080). wrk is installed from Debian's
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
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --connections) CONNECTIONS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --plans) PLANS=1; shift ;;
    --no-load) LOAD=0; shift ;;
    --buffer-pool) POOL=$2; shift 2 ;;
    -h | --help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

DB_URL=${STV3_BENCH_API_DATABASE:-mysql://stv3:stv3@127.0.0.1:3306/stv3_bench_api}
PORT=${STV3_BENCH_API_PORT:-18080}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=$TARGET/api-bench
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
