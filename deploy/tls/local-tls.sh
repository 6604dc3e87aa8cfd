#!/usr/bin/env bash
# TLS listeners on this machine, for tests/tls.rs and for trying
# `sslmode=verify-full` and `amqps://` by hand. Throwaway: a certificate
# authority made here, never trusted by anything but the tests.
#
#   deploy/tls/local-tls.sh          make sure everything below is in place (idempotent)
#   deploy/tls/local-tls.sh status   say what is in place, change nothing
#   deploy/tls/local-tls.sh stop     stop the TLS broker node (PostgreSQL keeps its TLS)
#
# What it does, in $DZ_TLS_DIR (default /var/tmp/dynzero-tls):
#   ca.pem / ca.key              a certificate authority (openssl, 10 years)
#   server.pem / server.key      a server certificate it signed, for localhost and 127.0.0.1
#   other-ca.pem                 a second, unrelated authority: the "wrong CA" of the tests
#   postgres/server.{pem,key}    the server pair as PostgreSQL reads it (owned by postgres, 0600)
#   rabbitmq/                    the TLS broker node's configuration, data and logs
#
# PostgreSQL: the machine's own server gets ssl = on with that pair (ALTER
# SYSTEM, then pg_reload_conf(); no restart). Plain TCP keeps working: TLS is
# what a client asks for, and pg_hba.conf is not touched.
#
# RabbitMQ: the machine's broker (5672) is never touched. A separate node
# started from the installed server, dztls@localhost, listens with TLS only
# on 127.0.0.1:5671 (Erlang distribution 25671, its own epmd on 4372, its
# own cookie and data), user guest/guest from loopback as usual.
#
# A second run finds everything working (a verify-full query and a verified
# handshake on 5671) and returns in well under a second.
set -euo pipefail

DIR="${DZ_TLS_DIR:-/var/tmp/dynzero-tls}"
PG_HOST=127.0.0.1
PG_PORT=5432
PG_USER=postgres
TLS_PORT=5671
DIST_PORT=25671
NODE=dztls@localhost
START_SECONDS=120
# The server certificate is renewed when it has less than this left.
RENEW_SECONDS=$((7 * 24 * 3600))
# The installed server's own scripts, not the /usr/sbin wrappers, which
# switch to the rabbitmq user and its home (the shared broker's).
RABBITMQ_BIN="${RABBITMQ_BIN:-/usr/lib/rabbitmq/bin}"
[[ -x "$RABBITMQ_BIN/rabbitmq-server" ]] || RABBITMQ_BIN="$(dirname "$(command -v rabbitmq-server)")"

RMQ_DIR="$DIR/rabbitmq"
# Every rabbitmq command below: its own epmd, cookie (HOME) and no
# environment file of the machine's broker (which names rabbit@localhost).
export ERL_EPMD_PORT=4372
export ERL_EPMD_ADDRESS=127.0.0.1
export HOME="$RMQ_DIR/home"
export RABBITMQ_CONF_ENV_FILE="$RMQ_DIR/rabbitmq-env.conf"

say() { printf 'tls: %s\n' "$*"; }

# --- certificates -------------------------------------------------------

new_ca() { # $1: file stem, $2: common name
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
        -keyout "$1.key" -out "$1.pem" -days 3650 -subj "/CN=$2" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    chmod 600 "$1.key"
}

new_server_certificate() {
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
        -keyout "$DIR/server.key" -out "$DIR/server.csr" -subj "/CN=localhost" 2>/dev/null
    cat >"$DIR/server.ext" <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
EOF
    openssl x509 -req -in "$DIR/server.csr" -CA "$DIR/ca.pem" -CAkey "$DIR/ca.key" \
        -CAcreateserial -out "$DIR/server.pem" -days 825 -extfile "$DIR/server.ext" 2>/dev/null
    rm -f "$DIR/server.csr" "$DIR/server.ext"
    chmod 600 "$DIR/server.key"
}

certificates() {
    mkdir -p "$DIR"
    # PostgreSQL's server process must be able to reach postgres/ below.
    chmod 755 "$DIR"
    if [[ ! -f "$DIR/ca.pem" || ! -f "$DIR/ca.key" ]]; then
        new_ca "$DIR/ca" "dynzero throwaway test CA"
        rm -f "$DIR/server.pem"
        say "made the certificate authority $DIR/ca.pem"
    fi
    if [[ ! -f "$DIR/other-ca.pem" ]]; then
        new_ca "$DIR/other-ca" "dynzero unrelated test CA"
        say "made the unrelated authority $DIR/other-ca.pem"
    fi
    if [[ ! -f "$DIR/server.pem" ]] ||
        ! openssl x509 -checkend "$RENEW_SECONDS" -noout -in "$DIR/server.pem" >/dev/null ||
        ! openssl verify -CAfile "$DIR/ca.pem" "$DIR/server.pem" >/dev/null 2>&1; then
        new_server_certificate
        say "made the server certificate $DIR/server.pem (localhost, 127.0.0.1)"
    fi
    # PostgreSQL refuses a key file others can read, and runs as postgres.
    mkdir -p "$DIR/postgres"
    chmod 755 "$DIR/postgres"
    if ! cmp -s "$DIR/server.pem" "$DIR/postgres/server.pem" ||
        ! cmp -s "$DIR/server.key" "$DIR/postgres/server.key"; then
        install -o postgres -g postgres -m 0644 "$DIR/server.pem" "$DIR/postgres/server.pem"
        install -o postgres -g postgres -m 0600 "$DIR/server.key" "$DIR/postgres/server.key"
    fi
}

# --- PostgreSQL -----------------------------------------------------------

psql_admin() {
    psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres -qAtX "$@"
}

pg_verified() {
    PGSSLMODE=verify-full PGSSLROOTCERT="$DIR/ca.pem" PGCONNECT_TIMEOUT=5 \
        psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres -qAtX \
        -c "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()" 2>/dev/null | grep -qx t
}

postgres_tls() {
    if pg_verified; then
        say "PostgreSQL $PG_HOST:$PG_PORT: TLS verified with $DIR/ca.pem"
        return
    fi
    psql_admin <<SQL
ALTER SYSTEM SET ssl_cert_file = '$DIR/postgres/server.pem';
ALTER SYSTEM SET ssl_key_file = '$DIR/postgres/server.key';
ALTER SYSTEM SET ssl = on;
SELECT pg_reload_conf() \g /dev/null
SQL
    # The postmaster reloads asynchronously; a bad file leaves the old
    # settings in force and says why in its log.
    local tries=0
    until pg_verified; do
        if ((tries >= 50)); then
            echo "tls: PostgreSQL did not take the certificate; see its log and:" >&2
            psql_admin -c "SELECT name, setting, error FROM pg_file_settings WHERE name LIKE 'ssl%'" >&2
            exit 1
        fi
        sleep 0.1
        tries=$((tries + 1))
    done
    say "PostgreSQL $PG_HOST:$PG_PORT: TLS on (reloaded), verified with $DIR/ca.pem"
}

# --- RabbitMQ TLS node -----------------------------------------------------

rabbitmq_verified() {
    # A verified handshake with the CA, for the name 127.0.0.1.
    timeout 5 openssl s_client -connect "127.0.0.1:$TLS_PORT" -CAfile "$DIR/ca.pem" \
        -verify_ip 127.0.0.1 -verify_return_error -brief </dev/null >/dev/null 2>&1
}

ctl() {
    "$RABBITMQ_BIN/rabbitmqctl" -n "$NODE" "$@"
}

node_running() {
    ctl -q ping >/dev/null 2>&1
}

node_env() {
    export RABBITMQ_NODENAME="$NODE"
    export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    # The Erlang distribution on loopback only, like the machine's broker.
    export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
    # Unused: the configuration turns the plain listener off.
    export RABBITMQ_NODE_PORT=5670
    export RABBITMQ_DIST_PORT="$DIST_PORT"
    export RABBITMQ_MNESIA_BASE="$RMQ_DIR/mnesia"
    export RABBITMQ_LOG_BASE="$RMQ_DIR/log"
    export RABBITMQ_PID_FILE="$RMQ_DIR/pid"
    export RABBITMQ_CONFIG_FILE="$RMQ_DIR/rabbitmq.conf"
    export RABBITMQ_ENABLED_PLUGINS_FILE="$RMQ_DIR/enabled_plugins"
    export RABBITMQ_ADVANCED_CONFIG_FILE="$RMQ_DIR/advanced.config"
}

rabbitmq_prepare() {
    mkdir -p "$HOME" "$RMQ_DIR/log"
    if [[ ! -f "$HOME/.erlang.cookie" ]]; then
        head -c 30 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$HOME/.erlang.cookie"
        chmod 400 "$HOME/.erlang.cookie"
    fi
    : >"$RABBITMQ_CONF_ENV_FILE"
    echo '[].' >"$RMQ_DIR/enabled_plugins"
    echo '[].' >"$RMQ_DIR/advanced.config"
    cat >"$RMQ_DIR/rabbitmq.conf" <<EOF
# Written by deploy/tls/local-tls.sh: TLS only, for tests/tls.rs.
listeners.tcp = none
listeners.ssl.default = 127.0.0.1:$TLS_PORT
ssl_options.cacertfile = $DIR/ca.pem
ssl_options.certfile = $DIR/server.pem
ssl_options.keyfile = $DIR/server.key
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
loopback_users.guest = true
disk_free_limit.absolute = 50MB
EOF
}

rabbitmq_tls() {
    if rabbitmq_verified; then
        say "RabbitMQ TLS node $NODE on 127.0.0.1:$TLS_PORT: verified with $DIR/ca.pem"
        return
    fi
    rabbitmq_prepare
    if node_running; then
        # Up but not answering with this certificate (it was renewed): restart it.
        say "restarting $NODE for the new certificate"
        ctl -q stop "$RMQ_DIR/pid" || true
    fi
    say "starting $NODE (TLS on 127.0.0.1:$TLS_PORT)"
    (
        node_env
        setsid "$RABBITMQ_BIN/rabbitmq-server" >>"$RMQ_DIR/log/console.log" 2>&1 </dev/null &
    )
    local waited=0
    until node_running; do
        if ((waited >= START_SECONDS)); then
            echo "tls: $NODE did not come up; see $RMQ_DIR/log" >&2
            exit 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
    ctl -q await_startup --timeout "$START_SECONDS"
    if ! rabbitmq_verified; then
        echo "tls: $NODE is up but 127.0.0.1:$TLS_PORT does not verify with $DIR/ca.pem; see $RMQ_DIR/log" >&2
        exit 1
    fi
    say "RabbitMQ TLS node $NODE on 127.0.0.1:$TLS_PORT: started, verified with $DIR/ca.pem"
}

status() {
    if [[ -f "$DIR/ca.pem" ]]; then say "CA $DIR/ca.pem"; else say "no CA in $DIR"; fi
    if [[ -f "$DIR/ca.pem" ]] && pg_verified; then
        say "PostgreSQL $PG_HOST:$PG_PORT: TLS verified"
    else
        say "PostgreSQL $PG_HOST:$PG_PORT: no TLS with this CA"
    fi
    if [[ -f "$DIR/ca.pem" ]] && rabbitmq_verified; then
        say "RabbitMQ 127.0.0.1:$TLS_PORT: TLS verified"
    else
        say "RabbitMQ 127.0.0.1:$TLS_PORT: no TLS listener with this CA"
    fi
}

stop() {
    if node_running; then
        ctl -q stop "$RMQ_DIR/pid" && say "$NODE stopped"
    else
        say "$NODE not running"
    fi
    # The node's own epmd (port $ERL_EPMD_PORT), never the machine's.
    epmd -port "$ERL_EPMD_PORT" -kill >/dev/null 2>&1 || true
}

case "${1:-}" in
"")
    certificates
    postgres_tls
    rabbitmq_tls
    ;;
status) status ;;
stop) stop ;;
*)
    echo "usage: $0 [status|stop]" >&2
    exit 2
    ;;
esac
