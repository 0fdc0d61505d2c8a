#!/usr/bin/env bash
# Fuzzes stv3-api from its own OpenAPI document with schemathesis: starts the server
# on a temporary SQLite database seeded with the sample notifications (through
# `stv3 replay`, the real engine) and a few archives, on a loopback port, then runs
# `schemathesis run <url>/openapi.json` checking that no answer is a 5xx and that
# every answer (status, content type, body) conforms to the document. Bounded in
# time; exits non-zero on any failure.
#
#   api/fuzz/schemathesis.sh                 build (debug) and fuzz
#   STV3_FUZZ_MAX_EXAMPLES=50 api/fuzz/schemathesis.sh
#
# Needs scripts/python-tools.sh (run here; it installs schemathesis when missing).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
MAX_EXAMPLES=${STV3_FUZZ_MAX_EXAMPLES:-25}
MAX_TIME=${STV3_FUZZ_MAX_TIME:-100}
PORT=${STV3_FUZZ_PORT:-0}
TOKEN=fuzz-token-$$
log() { printf '[fuzz] %s\n' "$*" >&2; }

SCHEMATHESIS=$("$ROOT/scripts/python-tools.sh" | sed -n 's/^schemathesis=//p')
[ -x "$SCHEMATHESIS" ] || { log "schemathesis not installed"; exit 1; }

log "building stv3 and stv3-api"
(cd "$ROOT" && cargo build -q -p stv3-worker --bin stv3 && cargo build -q -p stv3-api --bin stv3-api)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
STV3=$TARGET_DIR/debug/stv3
API=$TARGET_DIR/debug/stv3-api

WORK=$(mktemp -d /tmp/stv3-api-fuzz.XXXXXX)
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

DB="sqlite://$WORK/fuzz.db"
log "seeding $DB"
"$STV3" replay --config "$ROOT/etc/winchester.yaml" --database "$DB" --expire \
  "$ROOT/etc/sample-notifications.jsonl" >"$WORK/replay.log" 2>&1 \
  || { cat "$WORK/replay.log" >&2; exit 1; }
mkdir -p "$WORK/archive"
printf '{"event_type":"a"}\n' >"$WORK/archive/events_2015_02_27-stv3-1.json"
printf '\x1f\x8b' >"$WORK/archive/events_2015_02_28-stv3-2.json.gz"
printf '%s\n' "$TOKEN" >"$WORK/token"

if [ "$PORT" = 0 ]; then
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
fi
BASE=http://127.0.0.1:$PORT
STV3_LOG_FORMAT=text RUST_LOG=${RUST_LOG:-warn} "$API" --database "$DB" --listen "127.0.0.1:$PORT" \
  --token-file "$WORK/token" --archive-dir "$WORK/archive" >"$WORK/api.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
  if curl -fsS "$BASE/readyz" >/dev/null 2>&1; then break; fi
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/api.log" >&2; exit 1; }
  sleep 0.1
done
curl -fsS "$BASE/readyz" >/dev/null || { log "server not ready"; cat "$WORK/api.log" >&2; exit 1; }

log "schemathesis against $BASE/openapi.json (max $MAX_EXAMPLES examples per operation, ${MAX_TIME}s)"
rc=0
cd "$WORK"  # schemathesis keeps its state in ./.schemathesis
timeout --signal=INT "$((MAX_TIME + 60))" "$SCHEMATHESIS" run "$BASE/openapi.json" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-examples "$MAX_EXAMPLES" \
  --max-time "$MAX_TIME" \
  --workers 2 \
  --request-timeout 10 \
  --header "Authorization: Bearer $TOKEN" \
  --seed "${STV3_FUZZ_SEED:-20150227}" \
  --no-color || rc=$?
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  log "the server died during the run"; cat "$WORK/api.log" >&2; exit 1
fi
if grep -q ' 5[0-9][0-9] \|status=5[0-9][0-9]\|panicked' "$WORK/api.log"; then
  log "server log shows 5xx or panics:"; grep ' 5[0-9][0-9] \|status=5[0-9][0-9]\|panicked' "$WORK/api.log" | head -20 >&2
  rc=1
fi
[ "$rc" -eq 0 ] && log "passed" || log "FAILED (exit $rc)"
exit "$rc"
