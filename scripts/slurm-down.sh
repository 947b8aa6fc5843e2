#!/usr/bin/env bash
# Stop the throw-away SLURM cluster started by scripts/slurm-up.sh: only the daemons that script
# started (listed in $FER_SLURM_STATE/started as "NAME PIDFILE"), newest first, by PID file.
# Daemons that were already running before slurm-up.sh are left alone. Safe to rerun.
set -uo pipefail

STATE=${FER_SLURM_STATE:-/run/fer-slurm}   # must match slurm-up.sh
LIST="$STATE/started"
[ -s "$LIST" ] || { echo "slurm-down: nothing to stop ($LIST is empty or absent)"; exit 0; }

# pid_of NAME PIDFILE: the PID in PIDFILE if that process is alive and is NAME (no PID reuse)
pid_of() {
  [ -s "$2" ] || return 1
  local pid; pid=$(cat "$2")
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] && echo "$pid"
}

# running PID: the process exists and is not a zombie waiting to be reaped
running() { kill -0 "$1" 2>/dev/null && ! grep -q '^[0-9]* (.*) Z' "/proc/$1/stat" 2>/dev/null; }

pids=()
while read -r name pidfile; do
  pid=$(pid_of "$name" "$pidfile") || continue
  echo "slurm-down: stopping $name (pid $pid)"
  kill "$pid" && pids+=("$pid")
done < <(tac "$LIST")

# wait up to 10 s for them to exit, then SIGKILL the stragglers (by the same PIDs)
for _ in $(seq 100); do
  left=()
  for pid in "${pids[@]}"; do running "$pid" && left+=("$pid"); done
  [ ${#left[@]} = 0 ] && break
  sleep 0.1
done
for pid in "${left[@]}"; do
  echo "slurm-down: pid $pid ignored SIGTERM; sending SIGKILL" >&2
  kill -9 "$pid" 2>/dev/null
done
rm -f "$LIST"
