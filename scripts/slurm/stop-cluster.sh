#!/usr/bin/env bash
# Stop the daemons that start-cluster.sh started, by the pids in their pid files only.
#
# usage: scripts/slurm/stop-cluster.sh [STATE_DIR]   (same default as start-cluster.sh)
# Safe to call twice, or when nothing was started (it then does nothing).
set -uo pipefail

STATE_DIR="${1:-${CLMREPRO_SLURM_STATE:-/tmp/clmrepro-slurm}}"

stop_pidfile() {  # stop_pidfile NAME: TERM, wait up to 10 s, then KILL
    local file="$STATE_DIR/$1.pid" pid i
    [ -s "$file" ] || return 0
    pid="$(cat "$file")"
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null
        for i in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "stop-cluster: $1 (pid $pid) ignored TERM; sending KILL" >&2
            kill -KILL "$pid" 2>/dev/null
        fi
        echo "stop-cluster: stopped $1 (pid $pid)" >&2
    fi
    rm -f "$file"
}

# Jobs first (their slurmstepd children belong to slurmd), then the daemons.
if [ -s "$STATE_DIR/slurmctld.pid" ] && command -v scancel >/dev/null; then
    # The cluster is ours alone (one node, made by start-cluster.sh): cancel its jobs.
    timeout 10 scancel --user="$(id -un)" 2>/dev/null || true
fi
stop_pidfile slurmd
stop_pidfile slurmctld
stop_pidfile munged
exit 0
