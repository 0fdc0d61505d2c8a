#!/bin/bash
# Entrypoint of the e2e RabbitMQ image (a test fixture, not product): one user, from
# RABBITMQ_DEFAULT_USER and RABBITMQ_DEFAULT_PASS (the official image's names), allowed
# in from anywhere; logs on standard output. RABBITMQ_NODE_PORT and RABBITMQ_DIST_PORT
# move the ports (the smoke tests run it on the host network, beside the host's broker).
# RABBITMQ_SSL_CERTFILE, RABBITMQ_SSL_KEYFILE and RABBITMQ_SSL_CACERTFILE add a TLS
# listener on RABBITMQ_SSL_PORT (5671) beside the plain one; RABBITMQ_SSL_VERIFY_PEER=true
# makes it refuse clients without a certificate that CA signed (mutual TLS).
set -euo pipefail
log() { printf '[stv3-e2e-rabbitmq] %s\n' "$*" >&2; }
[[ -n ${RABBITMQ_DEFAULT_USER:-} && -n ${RABBITMQ_DEFAULT_PASS:-} ]] \
  || { log "RABBITMQ_DEFAULT_USER and RABBITMQ_DEFAULT_PASS must be set"; exit 1; }
case "$RABBITMQ_DEFAULT_USER$RABBITMQ_DEFAULT_PASS" in
  *$'\n'*) log "the user and password must be one line each"; exit 1 ;;
esac
export HOME=/var/lib/rabbitmq
export RABBITMQ_NODENAME=${RABBITMQ_NODENAME:-rabbit@localhost}
export RABBITMQ_CONFIG_FILE=$HOME/stv3-e2e
export RABBITMQ_ENABLED_PLUGINS_FILE=$HOME/enabled_plugins
export RABBITMQ_LOG_BASE=/tmp RABBITMQ_MNESIA_BASE=$HOME/mnesia
# The Erlang distribution needs a cookie only this user can read.
[[ -s $HOME/.erlang.cookie ]] || { head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$HOME/.erlang.cookie"; }
chmod 400 "$HOME/.erlang.cookie"
echo '[].' >"$RABBITMQ_ENABLED_PLUGINS_FILE"
cat >"$RABBITMQ_CONFIG_FILE.conf" <<CONF
listeners.tcp.default = ${RABBITMQ_NODE_PORT:-5672}
default_user = $RABBITMQ_DEFAULT_USER
default_pass = $RABBITMQ_DEFAULT_PASS
loopback_users = none
log.console = true
log.console.level = warning
log.file = false
CONF
if [[ -n ${RABBITMQ_SSL_CERTFILE:-} ]]; then
  [[ -r $RABBITMQ_SSL_CERTFILE && -r ${RABBITMQ_SSL_KEYFILE:-} && -r ${RABBITMQ_SSL_CACERTFILE:-} ]] \
    || { log "RABBITMQ_SSL_CERTFILE, RABBITMQ_SSL_KEYFILE and RABBITMQ_SSL_CACERTFILE must be readable files"; exit 1; }
  verify=verify_none fail=false
  if [[ ${RABBITMQ_SSL_VERIFY_PEER:-false} == true ]]; then verify=verify_peer fail=true; fi
  cat >>"$RABBITMQ_CONFIG_FILE.conf" <<CONF
listeners.ssl.default = ${RABBITMQ_SSL_PORT:-5671}
ssl_options.cacertfile = $RABBITMQ_SSL_CACERTFILE
ssl_options.certfile = $RABBITMQ_SSL_CERTFILE
ssl_options.keyfile = $RABBITMQ_SSL_KEYFILE
ssl_options.verify = $verify
ssl_options.fail_if_no_peer_cert = $fail
CONF
  log "TLS on port ${RABBITMQ_SSL_PORT:-5671} ($verify)"
fi
log "starting $RABBITMQ_NODENAME on port ${RABBITMQ_NODE_PORT:-5672} for user $RABBITMQ_DEFAULT_USER"
exec /usr/lib/rabbitmq/bin/rabbitmq-server
