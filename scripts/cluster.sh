#!/usr/bin/env bash
# A local multi-process Vectron cluster on loopback: three control nodes, three workers
# with one core each, and a gateway (the public API: gRPC 127.0.0.1:6334, HTTP
# 127.0.0.1:6333; $VECTRON_GRPC_ADDR and $VECTRON_HTTP_ADDR change them).
#
#   scripts/cluster.sh up       start the cluster (or the processes of it that are down)
#   scripts/cluster.sh status   which processes run, and the cluster as the control plane sees it
#   scripts/cluster.sh down     stop every process (SIGTERM, then SIGKILL after 10 s)
#
# Everything lives under one folder, $VECTRON_CLUSTER_DIR (default ./vectron-cluster):
#   cluster.key       the cluster key every process presents inside the cluster (drawn
#                     at the first `up`, readable by its owner only)
#   control-N/        data directory of control node N (Raft log, vote, snapshots)
#   worker-N/         data directory of worker N (its shards and identity)
#   logs/NAME.log, pids/NAME.pid
#
# Control node N listens on 127.0.0.1:$((VECTRON_CONTROL_BASE_PORT + N)) (base 7100).
# Node 1 starts a new cluster; nodes 2 and 3 join through node 1. Worker N serves its core
# on 127.0.0.1:$((7400 + 10 * N)) and its admin listener (stats, metrics) on
# 127.0.0.1:$((7390 + N)); it registers with every control node. Restarted processes
# resume from their data directories. The gateway follows the control plane, with the
# extra flags in $VECTRON_GATEWAY_ARGS (say --no-search-cache). The binary is
# $VECTRON_BIN, or target/release/vectron, or target/debug/vectron (built if neither
# exists).
set -euo pipefail
cd "$(dirname "$0")/.."

DIR=${VECTRON_CLUSTER_DIR:-./vectron-cluster}
KEY=$DIR/cluster.key
BASE=${VECTRON_CONTROL_BASE_PORT:-7100}
CONTROL_NODES=3
WORKERS=3

binary() {
  if [[ -n "${VECTRON_BIN:-}" ]]; then
    echo "$VECTRON_BIN"
  elif [[ -x target/release/vectron ]]; then
    echo target/release/vectron
  else
    if [[ ! -x target/debug/vectron ]]; then
      echo "cluster: building target/debug/vectron" >&2
      cargo build --quiet --bin vectron >&2
    fi
    echo target/debug/vectron
  fi
}

addr() { echo "127.0.0.1:$((BASE + $1))"; }

control_addrs() {
  local out=() i
  for ((i = 1; i <= CONTROL_NODES; i++)); do out+=("$(addr "$i")"); done
  local IFS=,
  echo "${out[*]}"
}

pid_of() {
  local file="$DIR/pids/$1.pid"
  [[ -f "$file" ]] || return 1
  local pid
  pid=$(<"$file")
  kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

# Waits until the process named $1 prints $2 (its serving line), or fails with its log.
wait_serving() {
  local name=$1 pattern=$2 log="$DIR/logs/$1.log" waited=0
  until grep -q "$pattern" "$log" 2>/dev/null; do
    if ! pid_of "$name" >/dev/null; then
      echo "cluster: $name exited; the end of $log:" >&2
      tail -n 20 "$log" >&2
      exit 1
    fi
    if ((waited >= 600)); then
      echo "cluster: $name not serving after 60 s; see $log" >&2
      exit 1
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
}

start_control() {
  local id=$1 name="control-$1"
  if pid=$(pid_of "$name"); then
    echo "$name already running (pid $pid) on $(addr "$id")"
    return
  fi
  local args=(control --node-id "$id" --addr "$(addr "$id")" --data-dir "$DIR/$name"
    --cluster-key-file "$KEY")
  if ((id > 1)); then args+=(--join "$(addr 1)"); fi
  : >"$DIR/logs/$name.log"
  nohup "$BIN" "${args[@]}" >>"$DIR/logs/$name.log" 2>&1 &
  echo $! >"$DIR/pids/$name.pid"
  wait_serving "$name" "serving on"
  echo "$name serving on $(addr "$id") (pid $(<"$DIR/pids/$name.pid"))"
}

worker_port() { echo $((7400 + 10 * $1)); }
worker_admin() { echo "127.0.0.1:$((7390 + $1))"; }

start_worker() {
  local id=$1 name="worker-$1"
  if pid=$(pid_of "$name"); then
    echo "$name already running (pid $pid) on 127.0.0.1:$(worker_port "$id")"
    return
  fi
  local args=(worker --data-dir "$DIR/$name" --cores 1 --no-pin
    --core-base-port "$(worker_port "$id")" --admin-addr "$(worker_admin "$id")"
    --control "$(control_addrs)" --cluster-key-file "$KEY")
  : >"$DIR/logs/$name.log"
  nohup "$BIN" "${args[@]}" >>"$DIR/logs/$name.log" 2>&1 &
  echo $! >"$DIR/pids/$name.pid"
  wait_serving "$name" '"event":"ready"'
  echo "$name serving on 127.0.0.1:$(worker_port "$id"), admin $(worker_admin "$id") (pid $(<"$DIR/pids/$name.pid"))"
}

GRPC_ADDR=${VECTRON_GRPC_ADDR:-127.0.0.1:6334}
HTTP_ADDR=${VECTRON_HTTP_ADDR:-127.0.0.1:6333}

start_gateway() {
  local name=gateway
  if pid=$(pid_of "$name"); then
    echo "$name already running (pid $pid) on $GRPC_ADDR"
    return
  fi
  : >"$DIR/logs/$name.log"
  local extra=()
  read -r -a extra <<<"${VECTRON_GATEWAY_ARGS:-}"
  nohup "$BIN" gateway --control "$(control_addrs)" --cluster-key-file "$KEY" \
    --grpc-addr "$GRPC_ADDR" --http-addr "$HTTP_ADDR" "${extra[@]}" >>"$DIR/logs/$name.log" 2>&1 &
  echo $! >"$DIR/pids/$name.pid"
  wait_serving "$name" '"event":"ready"'
  echo "$name serving gRPC on $GRPC_ADDR, HTTP on $HTTP_ADDR (pid $(<"$DIR/pids/$name.pid"))"
}

up() {
  BIN=$(binary)
  mkdir -p "$DIR/logs" "$DIR/pids"
  if [[ ! -s "$KEY" ]]; then
    (umask 077 && "$BIN" cluster key >"$KEY")
  fi
  local i
  for ((i = 1; i <= CONTROL_NODES; i++)); do start_control "$i"; done
  echo "control plane: $(control_addrs)"
  for ((i = 1; i <= WORKERS; i++)); do start_worker "$i"; done
  start_gateway
}

down() {
  [[ -d "$DIR/pids" ]] || { echo "nothing to stop"; return; }
  local file name pid waited
  # The gateway and the workers first: they talk to the control plane while they stop.
  for file in "$DIR"/pids/gateway.pid "$DIR"/pids/worker-*.pid "$DIR"/pids/control-*.pid; do
    [[ -e "$file" ]] || continue
    name=$(basename "$file" .pid)
    if pid=$(pid_of "$name"); then
      kill -TERM "$pid"
      waited=0
      while kill -0 "$pid" 2>/dev/null && ((waited < 100)); do
        sleep 0.1
        waited=$((waited + 1))
      done
      if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid"
        echo "$name killed (did not stop within 10 s)"
      else
        echo "$name stopped"
      fi
    fi
    rm -f "$file"
  done
}

status() {
  local i name pid
  for ((i = 1; i <= CONTROL_NODES; i++)); do
    name="control-$i"
    if pid=$(pid_of "$name"); then
      echo "$name  running  pid $pid  $(addr "$i")"
    else
      echo "$name  stopped           $(addr "$i")"
    fi
  done
  for ((i = 1; i <= WORKERS; i++)); do
    name="worker-$i"
    if pid=$(pid_of "$name"); then
      echo "$name   running  pid $pid  127.0.0.1:$(worker_port "$i")"
    else
      echo "$name   stopped           127.0.0.1:$(worker_port "$i")"
    fi
  done
  if pid=$(pid_of gateway); then
    echo "gateway    running  pid $pid  $GRPC_ADDR (gRPC), $HTTP_ADDR (HTTP)"
  else
    echo "gateway    stopped           $GRPC_ADDR (gRPC), $HTTP_ADDR (HTTP)"
  fi
  echo
  BIN=$(binary)
  local keyed=()
  if [[ -s "$KEY" ]]; then keyed=(--cluster-key-file "$KEY"); fi
  "$BIN" cluster status --control "$(control_addrs)" "${keyed[@]}"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac
