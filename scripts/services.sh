#!/usr/bin/env bash
# Installs (only if missing) and runs the services the tests, benchmarks and the
# sandbox need: a MariaDB server and a RabbitMQ server, both on loopback only.
#
#   scripts/services.sh up [mariadb|rabbitmq]       install if missing, start, wait, create test db/user
#   scripts/services.sh down [mariadb|rabbitmq]     stop (fine when nothing runs)
#   scripts/services.sh restart [mariadb|rabbitmq]  down + up (fault-injection tests use this)
#   scripts/services.sh status                      say what answers; exit 1 if something does not
#   scripts/services.sh env                         print the URLs the tests read
#
# Everything is idempotent: `up` on running services only re-checks them. The servers
# run as plain background processes (no systemd on these machines), with their logs in
# $STV3_SERVICES_STATE (default /var/tmp/stv3-services), which failures point at.
set -euo pipefail

STATE_DIR=${STV3_SERVICES_STATE:-/var/tmp/stv3-services}
MYSQL_PORT=${STV3_MYSQL_PORT:-3306}
AMQP_PORT=${STV3_AMQP_PORT:-5672}
TEST_DB=${STV3_TEST_DB:-stv3_test}
TEST_USER=${STV3_TEST_DB_USER:-stv3}
TEST_PASSWORD=${STV3_TEST_DB_PASSWORD:-stv3}
MYSQL_SOCKET=/run/mysqld/mysqld.sock
READY_TIMEOUT=${STV3_SERVICES_TIMEOUT:-120}

log() { printf '[services] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo -E "$@"; else
    die "need root (or sudo) to run: $*"
  fi
}

# --- installation -----------------------------------------------------------

APT_UPDATED=0
apt_install() {
  # Keep the package's own init scripts from starting the server during install:
  # we start it ourselves, bound to loopback, below.
  local policy=/usr/sbin/policy-rc.d created=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
    as_root chmod +x "$policy"
    created=1
  fi
  if [ "$APT_UPDATED" -eq 0 ]; then
    log "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  local rc=0
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" \
    >"$STATE_DIR/apt-install.log" 2>&1 || rc=$?
  [ "$created" -eq 1 ] && as_root rm -f "$policy"
  [ "$rc" -eq 0 ] || die "apt-get install $* failed (exit $rc); see $STATE_DIR/apt-install.log"
}

ensure_mariadb_installed() {
  if command -v mariadbd >/dev/null 2>&1 && command -v mariadb >/dev/null 2>&1; then return; fi
  apt_install mariadb-server mariadb-client
}

ensure_rabbitmq_installed() {
  if command -v rabbitmq-server >/dev/null 2>&1 && command -v rabbitmqctl >/dev/null 2>&1; then return; fi
  apt_install rabbitmq-server
}

# --- MariaDB ------------------------------------------------------------------

mariadb_answers() {
  command -v mariadb-admin >/dev/null 2>&1 || return 1
  as_root mariadb-admin --protocol=socket --socket="$MYSQL_SOCKET" -uroot ping >/dev/null 2>&1
}

mariadb_up() {
  ensure_mariadb_installed
  if ! mariadb_answers; then
    as_root install -d -o mysql -g mysql /run/mysqld
    if [ ! -d /var/lib/mysql/mysql ]; then
      log "initialising MariaDB data directory"
      as_root mariadb-install-db --user=mysql --datadir=/var/lib/mysql \
        >"$STATE_DIR/mariadb-install.log" 2>&1 || die "mariadb-install-db failed; see $STATE_DIR/mariadb-install.log"
    fi
    log "starting MariaDB on 127.0.0.1:$MYSQL_PORT (log: $STATE_DIR/mariadb.log)"
    as_root touch "$STATE_DIR/mariadb.log"
    as_root chown mysql:mysql "$STATE_DIR/mariadb.log"
    # setsid: the server must outlive this script and the shell that ran it.
    as_root setsid nohup mariadbd --user=mysql --datadir=/var/lib/mysql \
      --bind-address=127.0.0.1 --port="$MYSQL_PORT" --socket="$MYSQL_SOCKET" \
      --pid-file=/run/mysqld/mysqld.pid --log-error="$STATE_DIR/mariadb.log" \
      --max-connections=500 --innodb-flush-log-at-trx-commit=2 \
      </dev/null >/dev/null 2>&1 &
    local waited=0
    until mariadb_answers; do
      sleep 1
      waited=$((waited + 1))
      [ "$waited" -lt "$READY_TIMEOUT" ] || die "MariaDB did not answer within ${READY_TIMEOUT}s; see $STATE_DIR/mariadb.log"
    done
    log "MariaDB answers after ${waited}s"
  fi
  # The test database and user, created idempotently. Tests make throw-away
  # databases named stv3_* of their own; the fault tests also make a restricted user
  # per test, take its rights away mid-run, end its connections and switch the server
  # read-only. MariaDB lets only a user with GRANT OPTION on *.* grant on a database
  # whose name has `_` in it, so the test user of this loopback-only test server is an
  # administrator.
  as_root mariadb --protocol=socket --socket="$MYSQL_SOCKET" -uroot <<SQL
CREATE DATABASE IF NOT EXISTS \`$TEST_DB\`;
CREATE DATABASE IF NOT EXISTS \`stv3_sandbox\`;
CREATE USER IF NOT EXISTS '$TEST_USER'@'127.0.0.1' IDENTIFIED BY '$TEST_PASSWORD';
CREATE USER IF NOT EXISTS '$TEST_USER'@'localhost' IDENTIFIED BY '$TEST_PASSWORD';
GRANT ALL PRIVILEGES ON *.* TO '$TEST_USER'@'127.0.0.1' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO '$TEST_USER'@'localhost' WITH GRANT OPTION;
SET GLOBAL read_only = 0;
FLUSH PRIVILEGES;
SQL
  # Prove the test credentials work over TCP, the way the tests connect.
  mariadb --protocol=tcp -h127.0.0.1 -P"$MYSQL_PORT" -u"$TEST_USER" -p"$TEST_PASSWORD" "$TEST_DB" \
    -e 'SELECT 1' >/dev/null || die "test user cannot connect to $TEST_DB over TCP"
}

mariadb_down() {
  if mariadb_answers; then
    log "stopping MariaDB"
    as_root mariadb-admin --protocol=socket --socket="$MYSQL_SOCKET" -uroot shutdown || true
  fi
  local waited=0
  while [ -f /run/mysqld/mysqld.pid ] && kill -0 "$(cat /run/mysqld/mysqld.pid 2>/dev/null)" 2>/dev/null; do
    sleep 1; waited=$((waited + 1))
    [ "$waited" -lt 60 ] || { as_root kill -9 "$(cat /run/mysqld/mysqld.pid)" 2>/dev/null || true; break; }
  done
}

# --- RabbitMQ -----------------------------------------------------------------

rabbitmq_env() {
  # Loopback only, and a node name that does not depend on this machine's hostname.
  export RABBITMQ_NODENAME=rabbit@localhost
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT=$AMQP_PORT
  export ERL_EPMD_ADDRESS=127.0.0.1
  export RABBITMQ_LOG_BASE=$STATE_DIR/rabbitmq-logs
  export RABBITMQ_DIST_PORT=$((AMQP_PORT + 20000))
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
}

rabbitmq_answers() {
  command -v rabbitmq-diagnostics >/dev/null 2>&1 || return 1
  (rabbitmq_env; as_root rabbitmq-diagnostics -q -n rabbit@localhost check_port_connectivity >/dev/null 2>&1)
}

rabbitmq_up() {
  ensure_rabbitmq_installed
  if rabbitmq_answers; then return; fi
  rabbitmq_env
  as_root install -d -o rabbitmq -g rabbitmq "$RABBITMQ_LOG_BASE"
  log "starting RabbitMQ on 127.0.0.1:$AMQP_PORT (logs: $RABBITMQ_LOG_BASE)"
  as_root setsid nohup rabbitmq-server </dev/null >"$STATE_DIR/rabbitmq.out" 2>&1 &
  local waited=0
  until rabbitmq_answers; do
    sleep 1
    waited=$((waited + 1))
    [ "$waited" -lt "$READY_TIMEOUT" ] || die "RabbitMQ did not answer within ${READY_TIMEOUT}s; see $STATE_DIR/rabbitmq.out and $RABBITMQ_LOG_BASE"
  done
  log "RabbitMQ answers after ${waited}s"
}

rabbitmq_down() {
  if rabbitmq_answers; then
    log "stopping RabbitMQ"
    (rabbitmq_env; as_root rabbitmqctl -q -n rabbit@localhost stop >/dev/null 2>&1) || true
  fi
}

# --- commands -----------------------------------------------------------------

print_env() {
  echo "STV3_TEST_MYSQL_URL=mysql://$TEST_USER:$TEST_PASSWORD@127.0.0.1:$MYSQL_PORT/$TEST_DB"
  echo "STV3_TEST_AMQP_URL=amqp://guest:guest@127.0.0.1:$AMQP_PORT/%2f"
}

status() {
  local rc=0
  if mariadb_answers; then echo "mariadb: up (127.0.0.1:$MYSQL_PORT)"; else echo "mariadb: down"; rc=1; fi
  if rabbitmq_answers; then echo "rabbitmq: up (127.0.0.1:$AMQP_PORT)"; else echo "rabbitmq: down"; rc=1; fi
  return "$rc"
}

usage() {
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
}

main() {
  local cmd=${1:-}
  local which=${2:-all}
  case "$which" in all | mariadb | rabbitmq) ;; *) usage >&2; exit 2 ;; esac
  mkdir -p "$STATE_DIR" 2>/dev/null || as_root install -d -m 0777 "$STATE_DIR"
  case "$cmd" in
    up)
      [ "$which" = rabbitmq ] || mariadb_up
      [ "$which" = mariadb ] || rabbitmq_up
      ;;
    down)
      [ "$which" = rabbitmq ] || mariadb_down
      [ "$which" = mariadb ] || rabbitmq_down
      ;;
    restart)
      main down "$which"
      main up "$which"
      ;;
    status) status ;;
    env) print_env ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"
