#!/bin/sh
# Installs the cluster's Erlang cookie from a secret file, then starts the
# broker through the image's own entrypoint.
set -eu
cookie=/var/lib/rabbitmq/.erlang.cookie
install -m 400 -o rabbitmq -g rabbitmq "$DYNZERO_ERLANG_COOKIE_FILE" "$cookie"
exec docker-entrypoint.sh "$@"
