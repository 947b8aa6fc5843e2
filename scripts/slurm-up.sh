#!/usr/bin/env bash
# Start a throw-away one-node SLURM cluster on this host (slurmctld + slurmd + munged from
# Debian's packages, one fake GPU through GRES) for tests and CI. Needs root; no systemd.
# Safe to rerun: daemons already up are left alone. Stop it with scripts/slurm-down.sh,
# which kills only the daemons this script started (listed in $FER_SLURM_STATE/started).
#
# Tested on Debian 12 (Slurm 22.05.8, MUNGE 0.5.15); pitfalls in docs/slurm.md.
# It refuses to overwrite an /etc/slurm/slurm.conf it did not write (a real site's).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
export PATH="$PATH:/usr/sbin:/sbin"   # runuser, daemons

STATE=${FER_SLURM_STATE:-/run/fer-slurm}   # where the list of daemons we started lives
MARK="# written by fer scripts/slurm-up.sh"  # first line of the slurm.conf we generate
CONF=/etc/slurm/slurm.conf

die() { echo "slurm-up: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (it installs packages and starts system daemons)"
if [ -s "$CONF" ] && ! head -1 "$CONF" | grep -qF "$MARK"; then
  die "$CONF exists and was not written by this script; refusing to overwrite a site config"
fi
mkdir -p "$STATE"
touch "$STATE/started"

# alive PIDFILE: the process named in PIDFILE is running
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
# started NAME PIDFILE: remember that this script started the daemon NAME
started() { echo "$1 $2" >> "$STATE/started"; }

# 1. packages: the 8-package minimum (slurmctld, slurmd, slurm-client, munge + libraries)
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
   || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi

# 2. MUNGE: key + daemon (runs as user munge, created by the package's postinst)
if [ ! -s /etc/munge/munge.key ]; then
  mkdir -p /etc/munge
  mungekey --create --force --keyfile=/etc/munge/munge.key
fi
chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
mkdir -p /run/munge /var/lib/munge /var/log/munge
chown munge:munge /run/munge /var/lib/munge /var/log/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
  started munged /run/munge/munged.pid
fi
munge -n | unmunge >/dev/null || die "munged does not answer (see /var/log/munge/munged.log)"

# 3. config: one node named after this host (pitfall 6), fake GPU backed by /dev/null.
#    No cgroup plugins in a sandbox (pitfall 7); DefMemPerCPU so a job does not take the whole
#    node (pitfall 3); MinJobAge >= 120 s so `squeue` still sees finished jobs (pitfall 1): one
#    hour, so that a test can check every job of a long run in squeue afterwards.
H=$(hostname -s)
NCPU=$(nproc)
MEM_MB=$(( $(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo) - 2048 ))
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /run/slurm /var/log/slurm
cat > "$CONF.new" <<CONF
$MARK
ClusterName=ci
SlurmctldHost=${H}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MinJobAge=3600
GresTypes=gpu
NodeName=${H} CPUs=${NCPU} RealMemory=${MEM_MB} Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
CHANGED=0
cmp -s "$CONF.new" "$CONF" || CHANGED=1
mv "$CONF.new" "$CONF"
cat > /etc/slurm/gres.conf <<CONF
$MARK
NodeName=${H} Name=gpu File=/dev/null
CONF

# 4. daemons (they daemonize and write their PID files under /run/slurm); running ones re-read
#    a changed slurm.conf
if [ "$CHANGED" = 1 ] && alive /run/slurm/slurmctld.pid; then
  scontrol reconfigure
fi
if ! alive /run/slurm/slurmctld.pid; then
  /usr/sbin/slurmctld && started slurmctld /run/slurm/slurmctld.pid
fi
if ! alive /run/slurm/slurmd.pid; then
  /usr/sbin/slurmd && started slurmd /run/slurm/slurmd.pid
fi
for _ in $(seq 60); do
  [ "$(sinfo -h -n "$H" -o %T 2>/dev/null)" = idle ] && break
  sleep 0.5
done
sinfo -N -o '%N %P %G %c %m %T'
if [ "$(sinfo -h -n "$H" -o %T)" != idle ]; then
  tail -20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2
  die "node $H is not idle"
fi

# 5. smoke test through the scheduler, with the fake GPU
srun -t 1 --gpus=1 bash -c \
  'echo "srun ok on $(hostname) job=$SLURM_JOB_ID CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES"'
