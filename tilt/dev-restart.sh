#!/bin/sh
# Development only (installed by the image's `dev` stage for the Tilt loop).
#
# Runs the command given as arguments and starts it again whenever this wrapper receives
# SIGHUP. Tilt's live_update syncs code into the running container and then sends SIGHUP, so
# the new code loads without a new container (a new container would start from the image and
# lose the synced files). SIGTERM or SIGINT stop the command and end the wrapper with the
# command's exit status; a command that exits on its own ends the wrapper the same way, so
# Kubernetes still sees crashes and restarts the pod.
set -u

child=
restart=0
stopping=0

# Background commands of a non-interactive shell ignore SIGINT, so the command always gets
# SIGTERM, which every ark-mesh service handles as a graceful stop.
stop_child() {
    if [ -n "$child" ]; then
        kill -TERM "$child" 2>/dev/null
    fi
}

trap 'restart=1; stop_child' HUP
trap 'stopping=1; stop_child' TERM INT

while :; do
    "$@" &
    child=$!
    # `wait` returns early when a trapped signal arrives; an exited child stays a zombie until
    # it is waited for, so `kill -0` tells "interrupted" from "finished".
    while :; do
        wait "$child"
        status=$?
        kill -0 "$child" 2>/dev/null || break
    done
    child=
    if [ "$restart" = 1 ] && [ "$stopping" = 0 ]; then
        restart=0
        echo "dev-restart: code changed, starting again: $*" >&2
        continue
    fi
    exit "$status"
done
