#!/usr/bin/env bash
# A three-node RabbitMQ cluster on this machine, from the installed server,
# for trying what happens when a broker node dies. It never touches the
# machine's own broker: its nodes have their own names (dz1..dz3@localhost),
# ports, data directories (/var/tmp/dynzero-local-cluster/), Erlang cookie
# and epmd. One cluster per machine, whichever clone starts it: its node
# names and ports are fixed, so two directories could not both run.
#
#   deploy/local-cluster.sh start          start the nodes that are down (and cluster them)
#   deploy/local-cluster.sh status         each node, and who leads dynzero.reconciler
#   deploy/local-cluster.sh leader         the node leading dynzero.reconciler
#   deploy/local-cluster.sh kill N         kill -9 node N (1, 2 or 3)
#   deploy/local-cluster.sh kill-leader    kill -9 the node leading dynzero.reconciler
#   deploy/local-cluster.sh stop           stop every node (data kept)
#   deploy/local-cluster.sh urls           the AMQP URLs, for amqp.urls
#
# Ports: AMQP 5701-5703, Erlang distribution 25701-25703, epmd 4371.
# Variables: DZ_CLUSTER_DIR (default /var/tmp/dynzero-local-cluster), DZ_CLUSTER_QUEUE
# (default dynzero.reconciler).
set -euo pipefail

cd "$(dirname "$0")/.."

NODES=(1 2 3)
BASE_DIR="${DZ_CLUSTER_DIR:-/var/tmp/dynzero-local-cluster}"
QUEUE="${DZ_CLUSTER_QUEUE:-dynzero.reconciler}"
AMQP_PORT_BASE=5700
DIST_PORT_BASE=25700
START_SECONDS=120
# The installed server's own scripts, not the /usr/sbin wrappers, which
# switch to the rabbitmq user and its home (the shared broker's).
RABBITMQ_BIN="${RABBITMQ_BIN:-/usr/lib/rabbitmq/bin}"
[[ -x "$RABBITMQ_BIN/rabbitmq-server" ]] || RABBITMQ_BIN="$(dirname "$(command -v rabbitmq-server)")"

# Everything below applies to every rabbitmq command this script runs: its
# own epmd, its own cookie (HOME), no environment file of the machine's broker.
export ERL_EPMD_PORT=4371
export ERL_EPMD_ADDRESS=127.0.0.1
export HOME="$BASE_DIR/home"
export RABBITMQ_CONF_ENV_FILE="$BASE_DIR/rabbitmq-env.conf"

node_name() { echo "dz$1@localhost"; }

# Sets the RABBITMQ_* variables of node $1 for the commands that follow.
node_env() {
    local n=$1 dir="$BASE_DIR/dz$1"
    export RABBITMQ_NODENAME
    RABBITMQ_NODENAME=$(node_name "$n")
    export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    export RABBITMQ_NODE_PORT=$((AMQP_PORT_BASE + n))
    export RABBITMQ_DIST_PORT=$((DIST_PORT_BASE + n))
    export RABBITMQ_MNESIA_BASE="$dir/mnesia"
    export RABBITMQ_LOG_BASE="$dir/log"
    export RABBITMQ_PID_FILE="$dir/pid"
    export RABBITMQ_CONFIG_FILE="$BASE_DIR/rabbitmq.conf"
    export RABBITMQ_ENABLED_PLUGINS_FILE="$BASE_DIR/enabled_plugins"
    export RABBITMQ_ADVANCED_CONFIG_FILE="$BASE_DIR/advanced.config"
}

ctl() {
    local n=$1
    shift
    "$RABBITMQ_BIN/rabbitmqctl" -n "$(node_name "$n")" "$@"
}

prepare() {
    mkdir -p "$HOME"
    if [[ ! -f "$HOME/.erlang.cookie" ]]; then
        head -c 30 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$HOME/.erlang.cookie"
        chmod 400 "$HOME/.erlang.cookie"
    fi
    : >"$RABBITMQ_CONF_ENV_FILE"
    echo '[].' >"$BASE_DIR/enabled_plugins"
    echo '[].' >"$BASE_DIR/advanced.config"
    {
        echo "# Written by deploy/local-cluster.sh."
        echo "cluster_formation.peer_discovery_backend = classic_config"
        for n in "${NODES[@]}"; do
            echo "cluster_formation.classic_config.nodes.$n = $(node_name "$n")"
        done
        echo "loopback_users.guest = true"
    } >"$BASE_DIR/rabbitmq.conf"
}

running() {
    ctl "$1" -q ping >/dev/null 2>&1
}

alive() {
    local pid_file="$BASE_DIR/dz$1/pid"
    [[ -f "$pid_file" ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null
}

launch_node() {
    local n=$1
    if running "$n" || alive "$n"; then
        return
    fi
    mkdir -p "$BASE_DIR/dz$n/log"
    (
        node_env "$n"
        "$RABBITMQ_BIN/rabbitmq-server" >>"$BASE_DIR/dz$n/log/console.log" 2>&1 &
        echo $! >"$BASE_DIR/dz$n/pid"
    )
}

wait_node() {
    local n=$1
    # The node answers pings only once its distribution is up: wait for that
    # (bounded), then for the broker inside it to finish booting.
    local waited=0
    until running "$n"; do
        if ((waited >= START_SECONDS)); then
            echo "$(node_name "$n") did not come up; see $BASE_DIR/dz$n/log" >&2
            exit 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
    ctl "$n" -q await_startup --timeout "$START_SECONDS"
    echo "$(node_name "$n") up on 127.0.0.1:$((AMQP_PORT_BASE + n))"
}

start() {
    mkdir -p "$BASE_DIR"
    prepare
    local n
    if [[ ! -d "$BASE_DIR/dz1/mnesia" ]]; then
        # A new cluster: one node at a time, so each later node finds the
        # first through the classic peer list and joins it.
        for n in "${NODES[@]}"; do
            launch_node "$n"
            wait_node "$n"
        done
    else
        # A restart: a node waits at boot for the peers it last saw, so all
        # the nodes that are down start together.
        for n in "${NODES[@]}"; do
            launch_node "$n"
        done
        for n in "${NODES[@]}"; do
            wait_node "$n"
        done
    fi
    ctl 1 -q cluster_status --formatter json |
        grep -o '"running_nodes":\[[^]]*\]' || true
}

stop() {
    for n in "${NODES[@]}"; do
        if running "$n"; then
            ctl "$n" -q stop "$BASE_DIR/dz$n/pid" && echo "$(node_name "$n") stopped"
        else
            echo "$(node_name "$n") not running"
        fi
    done
    # The cluster's own epmd (port $ERL_EPMD_PORT), never the machine's.
    epmd -port "$ERL_EPMD_PORT" -kill >/dev/null 2>&1 || true
}

leader() {
    local n
    for n in "${NODES[@]}"; do
        if running "$n"; then
            ctl "$n" -q list_queues --no-table-headers name leader 2>/dev/null |
                awk -F '\t' -v q="$QUEUE" '$1 == q { print $2 }'
            return
        fi
    done
}

status() {
    for n in "${NODES[@]}"; do
        if running "$n"; then
            echo "$(node_name "$n") running (AMQP 127.0.0.1:$((AMQP_PORT_BASE + n)))"
        else
            echo "$(node_name "$n") down"
        fi
    done
    echo "leader of $QUEUE: $(leader || true)"
}

kill_node() {
    local n=$1 pid
    pid=$(cat "$BASE_DIR/dz$n/pid")
    kill -9 "$pid"
    echo "killed $(node_name "$n") (pid $pid); bring it back with: $0 start"
}

kill_leader() {
    local node
    node=$(leader)
    if [[ -z "$node" ]]; then
        echo "no leader for $QUEUE (is it declared?)" >&2
        exit 1
    fi
    local n=${node#dz}
    n=${n%@*}
    local pid
    pid=$(cat "$BASE_DIR/dz$n/pid")
    kill -9 "$pid"
    echo "killed $node (pid $pid), leader of $QUEUE; bring it back with: $0 start"
}

urls() {
    local n
    for n in "${NODES[@]}"; do
        echo "amqp://guest:guest@127.0.0.1:$((AMQP_PORT_BASE + n))/%2f"
    done
}

case "${1:-}" in
start) start ;;
leader) leader ;;
kill) kill_node "${2:?usage: $0 kill N (1, 2 or 3)}" ;;
stop) stop ;;
status) status ;;
kill-leader) kill_leader ;;
urls) urls ;;
*)
    echo "usage: $0 start|stop|status|leader|kill N|kill-leader|urls" >&2
    exit 2
    ;;
esac
