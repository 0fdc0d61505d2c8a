#!/bin/bash
# Entrypoint of the e2e MariaDB image (a test fixture, not product). It honours what the
# operator's managed database sets, as the official MySQL image does:
#   MYSQL_ROOT_PASSWORD (required), MYSQL_DATABASE, MYSQL_USER, MYSQL_PASSWORD;
#   data in /var/lib/mysql; runs as uid/gid 999 (the pod's securityContext).
# An empty data directory is initialised once: the marker file is written only after the
# users and database exist, and a directory with the marker is never initialised again.
# MYSQL_TCP_PORT moves the port (the smoke tests run it on the host network).
set -euo pipefail
DATADIR=/var/lib/mysql
MARKER=$DATADIR/.stv3-e2e-initialised
# Sockets and pid files in /tmp: the image's /run is not the uid's to write.
RUN_DIR=/tmp/mysqld
PORT=${MYSQL_TCP_PORT:-3306}
log() { printf '[stv3-e2e-mariadb] %s\n' "$*" >&2; }

[[ -n ${MYSQL_ROOT_PASSWORD:-} ]] || { log "MYSQL_ROOT_PASSWORD is not set"; exit 1; }
if [[ -n ${MYSQL_USER:-} && -z ${MYSQL_PASSWORD:-} ]]; then log "MYSQL_USER is set without MYSQL_PASSWORD"; exit 1; fi
[[ -w $DATADIR ]] || { log "$DATADIR is not writable by uid $(id -u)"; exit 1; }
mkdir -p "$RUN_DIR"

# sql_string VALUE : VALUE as a quoted SQL string literal.
sql_string() {
  local v=${1//\\/\\\\}
  printf "'%s'" "${v//\'/\'\'}"
}
sql_ident() { printf '`%s`' "${1//\`/\`\`}"; }

initialise() {
  if [[ -e $DATADIR/mysql ]]; then
    log "an earlier initialisation did not finish (no $MARKER): starting it over"
    find "$DATADIR" -mindepth 1 -maxdepth 1 ! -name lost+found -exec rm -rf {} +
  fi
  log "initialising the empty data directory $DATADIR"
  mariadb-install-db --datadir="$DATADIR" --skip-test-db --auth-root-authentication-method=normal \
    >/tmp/install-db.log 2>&1 || { cat /tmp/install-db.log >&2; exit 1; }
  local sock=$RUN_DIR/init.sock i
  mariadbd --datadir="$DATADIR" --skip-networking --socket="$sock" --pid-file="$RUN_DIR/init.pid" \
    >/tmp/init-server.log 2>&1 &
  local pid=$!
  for ((i = 0; i < 120; i++)); do
    mariadb-admin --socket="$sock" -uroot ping >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || { cat /tmp/init-server.log >&2; exit 1; }
    sleep 0.5
  done
  # install-db also makes password-less accounts (root@127.0.0.1, root@::1,
  # root@<hostname>, anonymous ones); only root@localhost and what is made below stay.
  local extra
  extra=$(mariadb --socket="$sock" -uroot -N -B -e \
    "SELECT CONCAT('DROP USER ', QUOTE(User), '@', QUOTE(Host), ';') FROM mysql.user WHERE NOT (User = 'root' AND Host = 'localhost') AND User <> 'mariadb.sys'")
  local root sql
  root=$(sql_string "$MYSQL_ROOT_PASSWORD")
  sql="$extra
ALTER USER 'root'@'localhost' IDENTIFIED BY $root;
CREATE USER 'root'@'%' IDENTIFIED BY $root; GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"
  if [[ -n ${MYSQL_DATABASE:-} ]]; then
    sql+=" CREATE DATABASE IF NOT EXISTS $(sql_ident "$MYSQL_DATABASE");"
  fi
  if [[ -n ${MYSQL_USER:-} ]]; then
    sql+=" CREATE USER $(sql_string "$MYSQL_USER")@'%' IDENTIFIED BY $(sql_string "$MYSQL_PASSWORD");"
    if [[ -n ${MYSQL_DATABASE:-} ]]; then
      sql+=" GRANT ALL ON $(sql_ident "$MYSQL_DATABASE").* TO $(sql_string "$MYSQL_USER")@'%';"
    fi
  fi
  mariadb --socket="$sock" -uroot <<<"$sql" || { log "creating the users and database failed"; exit 1; }
  mariadb-admin --socket="$sock" -uroot -p"$MYSQL_ROOT_PASSWORD" shutdown
  wait "$pid" || true
  : >"$MARKER"
  log "initialised: database ${MYSQL_DATABASE:-<none>}, user ${MYSQL_USER:-<none>}"
}

if [[ -e $MARKER ]]; then
  log "$DATADIR is already initialised: starting"
else
  initialise
fi
exec mariadbd --datadir="$DATADIR" --bind-address=0.0.0.0 --port="$PORT" --skip-name-resolve \
  --socket="$RUN_DIR/mysqld.sock" --pid-file="$RUN_DIR/mysqld.pid"
