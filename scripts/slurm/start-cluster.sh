#!/usr/bin/env bash
# Start a one-node Slurm cluster on this machine, for testing the Slurm profile for real.
#
# usage: scripts/slurm/start-cluster.sh [STATE_DIR]
#   STATE_DIR (or $CLMREPRO_SLURM_STATE; default /tmp/clmrepro-slurm) holds spool, state,
#   logs and the pid files that stop-cluster.sh reads.
#
# Needs root (munge and slurmd run as root here) and Debian's slurm-wlm + munge; installs them
# with apt-get when missing (CLMREPRO_SLURM_NO_INSTALL=1 forbids that).  The configuration is
# the one recorded in docs/reference.md §7: accounting off, proctrack/linuxproc, task/none,
# one node and one partition `debug`.  slurm.conf goes to /etc/slurm/slurm.conf because jobs'
# own srun calls do not see a SLURM_CONF exported by the submitting shell (docs/reference.md §7).
# Idempotent: if the daemons from an earlier start still answer, it only waits for the node.
set -euo pipefail

STATE_DIR="${1:-${CLMREPRO_SLURM_STATE:-/tmp/clmrepro-slurm}}"
CONF=/etc/slurm/slurm.conf
NODE="$(hostname -s)"

die() { echo "start-cluster: ERROR: $*" >&2; exit 1; }
say() { echo "start-cluster: $*" >&2; }

[ "$(id -u)" = 0 ] || die "must run as root (munged and slurmd need it); no Slurm cluster started"

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
        && command -v munged >/dev/null && command -v sinfo >/dev/null; then
        return 0
    fi
    [ "${CLMREPRO_SLURM_NO_INSTALL:-0}" = 1 ] \
        && die "slurm-wlm/munge are not installed and CLMREPRO_SLURM_NO_INSTALL=1"
    command -v apt-get >/dev/null || die "slurm-wlm/munge missing and no apt-get to install them"
    say "installing slurm-wlm and munge with apt-get"
    # Another apt-get may hold the dpkg lock for a while (shared machines): wait for it.
    local try
    for try in 1 2 3 4 5 6 7 8 9 10; do
        if apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq -o DPkg::Lock::Timeout=120 slurm-wlm munge >/dev/null; then
            return 0
        fi
        say "apt-get failed (attempt $try), retrying in 10 s"
        sleep 10
    done
    die "could not install slurm-wlm and munge with apt-get"
}

alive() {  # alive PIDFILE: the daemon whose pid is recorded there still runs
    [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

start_munge() {
    mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
    chown munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
    if [ ! -s /etc/munge/munge.key ]; then
        # A fresh 1024-byte random key, made on the fly: it only has to agree between the
        # daemons of this one machine.
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
    if alive "$STATE_DIR/munged.pid"; then
        return 0
    fi
    if pgrep -x munged >/dev/null; then
        # A munged we did not start already serves the socket: use it, never stop it.
        say "using the munged that already runs (not started by this script)"
    else
        # --force: run as root and accept a key/socket dir we set up ourselves.
        munged --force --pid-file="$STATE_DIR/munged.pid" \
            --log-file="$STATE_DIR/log/munged.log" \
            || die "munged did not start (see $STATE_DIR/log/munged.log)"
        local i
        for i in $(seq 50); do
            [ -s "$STATE_DIR/munged.pid" ] && break
            sleep 0.1
        done
    fi
    munge -n | unmunge >/dev/null || die "munge -n | unmunge failed: munge is not working"
}

write_conf() {
    local cpus mem
    cpus="$(nproc)"
    # RealMemory below the machine's memory, or slurmd marks the node invalid.
    mem="$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.8}' /proc/meminfo)"
    mkdir -p /etc/slurm
    cat > "$CONF" <<EOF
# Written by clmrepro scripts/slurm/start-cluster.sh: a one-node test cluster.
ClusterName=clmrepro
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$STATE_DIR/state
SlurmdSpoolDir=$STATE_DIR/spool
SlurmctldPidFile=$STATE_DIR/slurmctld.pid
SlurmdPidFile=$STATE_DIR/slurmd.pid
SlurmctldLogFile=$STATE_DIR/log/slurmctld.log
SlurmdLogFile=$STATE_DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
SchedulerParameters=sched_interval=2
NodeName=$NODE CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
}

wait_idle() {
    local i state
    for i in $(seq 60); do
        state="$(sinfo -h -n "$NODE" -o %T 2>/dev/null || true)"
        case "$state" in
            idle|mixed|allocated) say "node $NODE is $state"; return 0 ;;
            *drain*|*down*)
                scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true ;;
        esac
        sleep 1
    done
    die "node $NODE did not become idle within 60 s (sinfo says '${state:-nothing}');" \
        "see $STATE_DIR/log/slurmctld.log and slurmd.log"
}

install_packages
mkdir -p "$STATE_DIR"/{state,spool,log}
start_munge
if alive "$STATE_DIR/slurmctld.pid" && alive "$STATE_DIR/slurmd.pid"; then
    say "slurmctld and slurmd already run (state in $STATE_DIR)"
    wait_idle
    exit 0
fi
if pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null; then
    die "a slurmctld or slurmd not started from $STATE_DIR already runs; stop it first"
fi
write_conf
# -c: start clean, forgetting jobs of an earlier test cluster.
slurmctld -c || die "slurmctld did not start (see $STATE_DIR/log/slurmctld.log)"
slurmd || die "slurmd did not start (see $STATE_DIR/log/slurmd.log)"
wait_idle
say "one-node cluster up; stop it with scripts/slurm/stop-cluster.sh $STATE_DIR"
