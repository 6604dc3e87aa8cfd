#!/bin/sh
# Gives each user of definitions.json its password from the environment
# (DYNZERO_<USER>_PASSWORD, e.g. dynzero-source-hr -> DYNZERO_SOURCE_HR_PASSWORD):
# the committed definitions hold no passwords. Run again to rotate them.
#
#   set-passwords.sh rabbit@rabbitmq-1
set -eu
node="$1"
install -m 400 "$DYNZERO_ERLANG_COOKIE_FILE" "$HOME/.erlang.cookie"
rabbitmqctl -n "$node" await_startup

for user in dynzero-hub dynzero-source-hr dynzero-source-civil-affairs \
    dynzero-source-community dynzero-source-jobs dynzero-reader-tiexi \
    dynzero-monitor; do
    var=$(printf '%s_PASSWORD' "$user" | tr 'a-z-' 'A-Z_')
    password=$(printenv "$var") || {
        echo "$var is not set" >&2
        exit 1
    }
    rabbitmqctl -q -n "$node" change_password "$user" "$password"
    echo "password set for $user"
done
