#!/usr/bin/env bash
# TLS for this machine's PostgreSQL and RabbitMQ, for the TLS tests and for
# trying dynzero with `sslmode=verify-full` and `amqps://`:
#
#   - a throwaway certificate authority and a server certificate for
#     localhost / 127.0.0.1 (openssl), in $DYNZERO_TLS_DIR
#     (default /var/tmp/dynzero-tls; the CA is `ca.pem` there);
#   - PostgreSQL: serves that certificate on its usual port 5432
#     (`ssl = on`, a conf.d file, then a configuration *reload*);
#   - RabbitMQ: a TLS listener on 127.0.0.1:5671, started in the running
#     broker (no restart); the plain listener on 5672 is untouched.
#
# Plain TCP keeps working on both. Run it again at any time: what exists is
# kept (certificates are made once), what is running is left running.
# Needs root (it writes to /etc/postgresql and reads as the servers' users).
set -euo pipefail

TLS_DIR="${DYNZERO_TLS_DIR:-/var/tmp/dynzero-tls}"
PG_HOST=127.0.0.1
PG_PORT=5432
AMQPS_PORT=5671
# Throwaway: long enough that a CI machine never sees one expire.
DAYS=3650

step() { printf '\n==> %s\n' "$*"; }

make_certificates() {
    step "certificates in $TLS_DIR"
    mkdir -p "$TLS_DIR"
    cd "$TLS_DIR"
    if [[ ! -s ca.pem || ! -s ca.key ]]; then
        openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
            -keyout ca.key -out ca.pem -days "$DAYS" -subj "/CN=dynzero throwaway CA" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
        rm -f server.pem server.key
        echo "made a certificate authority"
    fi
    if [[ ! -s server.pem || ! -s server.key ]]; then
        openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
            -keyout server.key -out server.csr -subj "/CN=localhost" 2>/dev/null
        printf '%s\n' \
            "basicConstraints=critical,CA:FALSE" \
            "keyUsage=critical,digitalSignature,keyEncipherment" \
            "extendedKeyUsage=serverAuth" \
            "subjectAltName=DNS:localhost,IP:127.0.0.1" >server.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
            -out server.pem -days "$DAYS" -extfile server.ext 2>/dev/null
        rm -f server.csr server.ext
        echo "made a server certificate for localhost and 127.0.0.1"
    fi
    chmod 0644 ca.pem server.pem
    chmod 0600 ca.key server.key
    cd - >/dev/null
}

enable_postgres() {
    local version conf_dir key_dir
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    conf_dir="/etc/postgresql/$version/main"
    key_dir="$conf_dir/dynzero-tls"
    step "PostgreSQL $version: TLS on port $PG_PORT"
    mkdir -p "$key_dir"
    # The server reads its key as its own user, and refuses a key others can read.
    install -o postgres -g postgres -m 0644 "$TLS_DIR/server.pem" "$key_dir/server.pem"
    install -o postgres -g postgres -m 0600 "$TLS_DIR/server.key" "$key_dir/server.key"
    cat >"$conf_dir/conf.d/95-dynzero-tls.conf" <<CONF
# Written by deploy/tls/make-certs.sh (dynzero): TLS with a throwaway CA.
ssl = on
ssl_cert_file = '$key_dir/server.pem'
ssl_key_file = '$key_dir/server.key'
CONF
    # A reload, not a restart: connections in use stay up. A certificate the
    # server cannot load leaves the previous one in service.
    psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -qAtc "SELECT pg_reload_conf()" >/dev/null
    local served
    for _ in $(seq 1 50); do
        served=$(psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -qAtc "SHOW ssl_cert_file")
        [[ "$served" == "$key_dir/server.pem" ]] && break
        sleep 0.1
    done
    [[ "$served" == "$key_dir/server.pem" ]] || {
        echo "PostgreSQL did not take the certificate (ssl_cert_file = $served)" >&2
        exit 1
    }
    echo "serving $key_dir/server.pem; plain connections still accepted"
}

enable_rabbitmq() {
    local key_dir=/etc/rabbitmq/dynzero-tls
    step "RabbitMQ: TLS listener on 127.0.0.1:$AMQPS_PORT"
    mkdir -p "$key_dir"
    install -o rabbitmq -g rabbitmq -m 0644 "$TLS_DIR/ca.pem" "$key_dir/ca.pem"
    install -o rabbitmq -g rabbitmq -m 0644 "$TLS_DIR/server.pem" "$key_dir/server.pem"
    install -o rabbitmq -g rabbitmq -m 0600 "$TLS_DIR/server.key" "$key_dir/server.key"
    if rabbitmq-diagnostics -q listeners 2>/dev/null | grep -q "port: $AMQPS_PORT,"; then
        echo "already listening"
        return
    fi
    # Started inside the running broker: no restart, the other listeners
    # and every open connection stay as they are.
    rabbitmqctl -q eval "
        {ok, _} = application:ensure_all_started(ssl),
        rabbit_networking:start_ssl_listener({\"127.0.0.1\", $AMQPS_PORT}, [
            {cacertfile, \"$key_dir/ca.pem\"},
            {certfile, \"$key_dir/server.pem\"},
            {keyfile, \"$key_dir/server.key\"},
            {verify, verify_none},
            {fail_if_no_peer_cert, false}], 4)." >/dev/null
    rabbitmq-diagnostics -q listeners | grep -q "port: $AMQPS_PORT," || {
        echo "RabbitMQ did not start the TLS listener" >&2
        exit 1
    }
    echo "listening (until the broker restarts; run this script again then)"
}

make_certificates
enable_postgres
enable_rabbitmq
step "CA for clients: $TLS_DIR/ca.pem"
