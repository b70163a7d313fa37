#!/bin/bash
# Per-core scaling of search, and the gateway against driving the cores directly, on one
# machine. Core threads are pinned to distinct physical cores; the gateway and the load
# generator get physical cores of their own, so no two of them share a core's
# hyperthreads. Prints JSON lines, also written to $OUT/scale.jsonl.
#
#   cargo build --release --bin vectron --bin vectron-bench
#   benches/scale.sh                     # DATA=dir of base/query/groundtruth, SECS=10
#
# Runs, each a worker or `vectron dev` started and stopped by the script (ports 7390,
# 7400+, 6333, 6334 on 127.0.0.1; data under /tmp):
#   scale    replicate layout (every core holds every point; queries round robin) on
#            1, 2, 4 and (physical cores - 2) cores: `vectron-bench core`
#   direct   4 cores, one collection in 4 shards, queries fan out from the client
#   inprocess  one thread searching the index in process (the ceiling of one core)
#   gateway  the same through `vectron dev` and `vectron bench` (gateway on 2 cores)
#   ingest2  `vectron dev` on 2 cores: streaming ingest through the gateway (sync always)
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${VECTRON_BIN_DIR:-$ROOT/target/release}
DATA=${DATA:-$ROOT/../shared/data/wiki-minilm}
SECS=${SECS:-10}
OUTF=${OUT:-/tmp}/scale.jsonl
: > "$OUTF"
echo "cpus: $(nproc)  kernel: $(uname -r)  $(grep -m1 'model name' /proc/cpuinfo)"
lscpu | grep -E 'Thread|Core|Socket|NUMA|L3' || true
# PC[i]: the CPUs (comma list) of physical core i, in order of their first CPU.
mapfile -t PC < <(for c in /sys/devices/system/cpu/cpu[0-9]*; do
  s=$(cat "$c/topology/thread_siblings_list")
  python3 -c "import sys
out=[]
for part in sys.argv[1].split(','):
    a,_,b=part.partition('-'); out+=range(int(a),int(b or a)+1)
print(','.join(map(str,sorted(out))))" "$s"; done | sort -t, -k1,1n | uniq)
echo "physical cores: ${#PC[@]}: ${PC[*]}"
firsts() { local out=() i; for ((i = $1; i < $2; i++)); do out+=("${PC[$i]%%,*}"); done; local IFS=,; echo "${out[*]}"; }
alls() { local out=() i; for ((i = $1; i < $2; i++)); do out+=("${PC[$i]}"); done; local IFS=,; echo "${out[*]}"; }
count() { echo "$1" | tr ',' '\n' | grep -c .; }
addrs() { local out=() i; for ((i = 0; i < $1; i++)); do out+=("127.0.0.1:$((7400 + i))"); done; local IFS=,; echo "${out[*]}"; }
wait_ready() { for _ in $(seq 300); do grep -q '"event":"ready"' "$1" && return 0; sleep 0.1; done; echo "no ready line in $1"; tail -5 "$1"; return 1; }
start_worker() { # $1 cpus
  rm -rf /tmp/vectron-scale-w
  "$B/vectron" worker --data-dir /tmp/vectron-scale-w --cpus "$1" --core-base-port 7400 \
    --admin-addr 127.0.0.1:7390 > /tmp/vectron-scale-w.log 2>&1 &
  WP=$!
  wait_ready /tmp/vectron-scale-w.log
}
stop() { kill -TERM "$1"; wait "$1" 2>/dev/null; }
tag() { python3 -c "import json,sys
for l in sys.stdin:
    l=l.strip()
    if not l.startswith('{'): print(l); continue
    d=json.loads(l); d.update(json.loads(sys.argv[1])); print(json.dumps(d))" "$1" | tee -a "$OUTF"; }
NP=${#PC[@]}

# 0. The in-process baseline: one thread searching the index directly (no network).
taskset -c "$(firsts 0 1)" "$B/vectron-bench" ann "$DATA" --metric cosine --ef 64 --k 10 \
  | tag '{"run":"inprocess","n":1}'

# 1. Scaling, replicate layout: every core holds all points; queries round robin.
SIZES="1 2 4"
[ "$NP" -ge 8 ] && SIZES="$SIZES $((NP - 2))"
[ "$NP" -lt 4 ] && SIZES="1"
for N in $SIZES; do
  CORES=$(firsts 0 "$N"); LOAD=$(alls "$N" "$NP")
  start_worker "$CORES" || continue
  taskset -c "$LOAD" "$B/vectron-bench" core --cores-addr "$(addrs "$N")" --dataset "$DATA" \
    --layout replicate --ef 64 --concurrency $((16 * N)) --seconds "$SECS" \
    --probe-during-ingest 0 --client-threads "$(count "$LOAD")" \
    | tag "{\"run\":\"scale\",\"n\":$N,\"core_cpus\":\"$CORES\",\"load_cpus\":\"$LOAD\"}"
  stop "$WP"
done

# 2. Gateway vs direct on the same 4 cores (one collection, 4 shards, a query fans out).
G=4; [ "$NP" -lt 8 ] && G=1
CORES=$(firsts 0 "$G")
if [ "$NP" -ge 8 ]; then GW=$(alls "$G" $((G + 2))); LOAD=$(alls $((G + 2)) "$NP"); else GW=$(alls 1 "$NP"); LOAD=$GW; fi
for rep in 1 2; do
  start_worker "$CORES" && {
  taskset -c "$LOAD" "$B/vectron-bench" core --cores-addr "$(addrs "$G")" --dataset "$DATA" \
    --layout spread --ef 64 --concurrency 16 --seconds "$SECS" --probe-during-ingest 0 \
    --client-threads "$(count "$LOAD")" \
    | tag "{\"run\":\"direct\",\"rep\":$rep,\"n\":$G,\"core_cpus\":\"$CORES\",\"load_cpus\":\"$LOAD\"}"
  stop "$WP"; }
  rm -rf /tmp/vectron-scale-d
  taskset -c "$GW" "$B/vectron" dev --data-dir /tmp/vectron-scale-d --cpus "$CORES" \
    --grpc-addr 127.0.0.1:6334 --http-addr 127.0.0.1:6333 > /tmp/vectron-scale-d.log 2>&1 &
  DP=$!
  wait_ready /tmp/vectron-scale-d.log && taskset -c "$LOAD" "$B/vectron" bench --addr http://127.0.0.1:6334 \
    --dataset "$DATA" --collection wiki --create --shards "$G" --ef 64 --concurrency 16 \
    --seconds "$SECS" \
    | tag "{\"run\":\"gateway\",\"rep\":$rep,\"n\":$G,\"core_cpus\":\"$CORES\",\"gateway_cpus\":\"$GW\",\"load_cpus\":\"$LOAD\"}"
  stop "$DP"
done

# 3. Ingest through the gateway into a dev of 2 cores (the figure quoted per 2 cores).
CORES=$(firsts 0 2)
rm -rf /tmp/vectron-scale-d
"$B/vectron" dev --data-dir /tmp/vectron-scale-d --cpus "$CORES" \
  --grpc-addr 127.0.0.1:6334 --http-addr 127.0.0.1:6333 > /tmp/vectron-scale-d.log 2>&1 &
DP=$!
wait_ready /tmp/vectron-scale-d.log && "$B/vectron" bench --addr http://127.0.0.1:6334 \
  --dataset "$DATA" --collection wiki --create --shards 2 --ef 64 --concurrency 16 --seconds 2 \
  | tag "{\"run\":\"ingest2\",\"n\":2,\"core_cpus\":\"$CORES\"}"
stop "$DP"
