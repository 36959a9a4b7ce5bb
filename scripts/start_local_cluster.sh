#!/usr/bin/env bash
# A Ray cluster on this machine: one head and N worker nodes, each its own `ray start`
# with its own temp dir, for trying --address (and testing it) without a real cluster.
#
#   scripts/start_local_cluster.sh [N_WORKERS] [CPUS_PER_NODE]   start (default: 1 worker, 1 CPU each)
#   scripts/start_local_cluster.sh stop                          stop exactly the nodes it started
#   scripts/start_local_cluster.sh status                        the address and which PIDs are alive
#
# Environment:
#   SPIKESORT_CLUSTER_DIR  run folder: node temp dirs, logs, `address`, `pids`, `cluster.env`
#                          (default /tmp/spikesort-cluster-$UID; keep it short: Ray's socket
#                          paths live under it and must stay under 107 characters)
#   GPUS_PER_NODE          GPUs each node declares (default 0: on one machine, nodes that all
#                          detected the same GPUs would count them twice)
#   OBJECT_STORE_MB        object store per node in MiB (default 256)
#   RAY_AUTH_MODE          token (default) or disabled; the same value for every node. Ray 2.60
#                          uses token auth by default; the token is Ray's own (~/.ray/auth_token,
#                          or RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH), made here if missing.
#
# "Loopback only", as far as Ray 2.60 allows: the drivers connect to 127.0.0.1, the dashboard
# is off and Ray's minimal dashboard process is bound to 127.0.0.1; but Ray rewrites a
# --node-ip-address of 127.0.0.1 to the machine's address and its gRPC servers (GCS, raylets,
# agents, workers; free ports Ray picks) listen on every interface, so what keeps other
# machines out is the token (and the machine's firewall).
# Stopping never uses `ray stop` (that stops every Ray process on the machine, other
# people's too): it signals the process groups it started, then any process left whose
# environment carries this cluster's marker (Ray workers run in their own sessions).
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"

RUN="${SPIKESORT_CLUSTER_DIR:-/tmp/spikesort-cluster-$(id -u)}"
RUN="$(mkdir -p "$RUN" && cd "$RUN" && pwd)"
MARKER="SPIKESORT_LOCAL_CLUSTER_NODE=$RUN"   # set on the node processes only
READY_TIMEOUT_S="${READY_TIMEOUT_S:-180}"

marked_pids() {  # processes (not this script or its parents) whose environment has MARKER
  local pid self_chain=" $$ $PPID "
  for dir in /proc/[0-9]*; do
    pid="${dir#/proc/}"
    case "$self_chain" in *" $pid "*) continue ;; esac
    if tr '\0' '\n' 2>/dev/null < "$dir/environ" | grep -qxF "$MARKER"; then echo "$pid"; fi
  done
}

alive() { kill -0 "$1" 2>/dev/null; }

marked() {  # pid: alive and carrying MARKER (a recorded PID may since belong to someone else)
  tr '\0' '\n' 2>/dev/null < "/proc/$1/environ" | grep -qxF "$MARKER"
}

stop_cluster() {
  local pids=() pid left i
  if [ -f "$RUN/pids" ]; then read -r -a pids < "$RUN/pids" || true; fi
  local mine=()
  for pid in "${pids[@]}"; do marked "$pid" && mine+=("$pid"); done
  # Each node is a `ray start --block` leading its own session and process group.
  for pid in "${mine[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for i in $(seq 1 75); do  # up to 15 s for a clean shutdown
    left=0
    for pid in "${mine[@]}"; do alive "$pid" && left=1; done
    [ "$left" = 0 ] && break
    sleep 0.2
  done
  for pid in "${mine[@]}"; do marked "$pid" && kill -KILL -- "-$pid" 2>/dev/null || true; done
  # What is left (Ray workers run in sessions of their own): by marker, PID by PID.
  for pid in $(marked_pids); do kill -KILL "$pid" 2>/dev/null || true; done
  rm -f "$RUN/pids" "$RUN/address"
  echo "Stopped the local Ray cluster in $RUN (node PIDs: ${pids[*]:-none})."
}

if [ "${1:-}" = "stop" ]; then
  stop_cluster
  exit 0
fi

if [ "${1:-}" = "status" ]; then
  if [ ! -f "$RUN/pids" ]; then echo "No local cluster recorded in $RUN."; exit 1; fi
  echo "address: $(cat "$RUN/address")"
  for pid in $(cat "$RUN/pids"); do
    if marked "$pid"; then echo "node $pid: running"; else echo "node $pid: gone"; fi
  done
  exit 0
fi

N_WORKERS="${1:-1}"
CPUS="${2:-1}"
case "$N_WORKERS$CPUS" in *[!0-9]*) echo "usage: $0 [N_WORKERS] [CPUS_PER_NODE] | stop | status" >&2; exit 2 ;; esac

if [ -f "$RUN/pids" ]; then
  for pid in $(cat "$RUN/pids"); do
    if marked "$pid"; then
      echo "A local cluster from $RUN is running (address $(cat "$RUN/address" 2>/dev/null)); stop it first: $0 stop" >&2
      exit 1
    fi
  done
  stop_cluster >/dev/null  # leftovers of a cluster whose nodes died
fi

export RAY_AUTH_MODE="${RAY_AUTH_MODE:-token}"
export RAY_USAGE_STATS_ENABLED=0
export RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S=0  # nothing to drain: stop at once on SIGTERM
if [ "$RAY_AUTH_MODE" = token ] && [ -z "${RAY_AUTH_TOKEN:-}" ] \
   && [ ! -f "${RAY_AUTH_TOKEN_PATH:-$HOME/.ray/auth_token}" ]; then
  ray get-auth-token --generate > /dev/null
fi

# Free ports: the head's GCS, its Ray client server and its (minimal) dashboard API.
read -r GCS_PORT CLIENT_PORT DASH_PORT <<< "$(python - <<'EOF'
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
EOF
)"
ADDRESS="127.0.0.1:$GCS_PORT"
COMMON=(--block --num-cpus="$CPUS" --num-gpus="${GPUS_PER_NODE:-0}"
        --object-store-memory=$(( ${OBJECT_STORE_MB:-256} * 1024 * 1024 ))
        --dashboard-agent-listen-port=0 --disable-usage-stats)

PIDS=()
start_node() {  # name, then `ray start` arguments; the node runs in a session of its own
  local name="$1"; shift
  rm -rf "${RUN:?}/$name"
  env "$MARKER" setsid ray start "$@" "${COMMON[@]}" --temp-dir="$RUN/$name" \
    > "$RUN/$name.log" 2>&1 < /dev/null &
  PIDS+=("$!")
  echo "$!" > "$RUN/$name.pid"
}

wait_ready() {  # name, pid: until its log says the runtime started
  local name="$1" pid="$2" started=$SECONDS
  until grep -q "Ray runtime started" "$RUN/$name.log" 2>/dev/null; do
    if ! alive "$pid" || (( SECONDS - started > READY_TIMEOUT_S )); then
      echo "Node $name did not start; its log ($RUN/$name.log) ends with:" >&2
      tail -n 20 "$RUN/$name.log" >&2
      echo "${PIDS[*]}" > "$RUN/pids"
      stop_cluster >&2
      exit 1
    fi
    sleep 0.2
  done
}

echo "${PIDS[*]}" > "$RUN/pids"
t0=$(date +%s.%N)
start_node head --head --port="$GCS_PORT" --ray-client-server-port="$CLIENT_PORT" \
  --include-dashboard=false --dashboard-host=127.0.0.1 --dashboard-port="$DASH_PORT"
echo "${PIDS[*]}" > "$RUN/pids"
wait_ready head "${PIDS[0]}"
t1=$(date +%s.%N)
for i in $(seq 1 "$N_WORKERS"); do
  start_node "worker$i" --address="$ADDRESS"
  echo "${PIDS[*]}" > "$RUN/pids"
done
for i in $(seq 1 "$N_WORKERS"); do wait_ready "worker$i" "${PIDS[$i]}"; done
t2=$(date +%s.%N)

echo "$ADDRESS" > "$RUN/address"
cat > "$RUN/cluster.env" <<EOF
# source this file to use the local cluster from a shell
export RAY_AUTH_MODE=$RAY_AUTH_MODE
export SPIKESORT_CLUSTER_ADDRESS=$ADDRESS
EOF
python - "$t0" "$t1" "$t2" "$N_WORKERS" > "$RUN/timings" <<'EOF'
import sys
t0, t1, t2, n = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
print(f"head_s={t1 - t0:.1f} workers_s={t2 - t1:.1f} n_workers={n}")
EOF

cat <<EOF
Local Ray cluster: head + $N_WORKERS worker(s), $CPUS CPU(s) and ${GPUS_PER_NODE:-0} GPU(s) each, RAY_AUTH_MODE=$RAY_AUTH_MODE
  started in: $(cat "$RUN/timings")
  address:    $ADDRESS      (also in $RUN/address)
  node PIDs:  ${PIDS[*]}   (logs and temp dirs in $RUN)
Use it (the driver needs the same RAY_AUTH_MODE; tuning/search/ray_runtime.py sets token mode itself
when a token exists and RAY_AUTH_MODE is unset):
  RAY_AUTH_MODE=$RAY_AUTH_MODE scripts/tune.sh ffn A2 --smoke --address $ADDRESS --storage $ROOT/ray_results
Stop it:
  $0 stop$( [ -n "${SPIKESORT_CLUSTER_DIR:-}" ] && echo "    (with SPIKESORT_CLUSTER_DIR=$RUN)")
EOF
