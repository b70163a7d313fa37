#!/usr/bin/env bash
# Replication factor 3 against 1 on one layout, in one run: the three-worker loopback
# cluster of scripts/cluster.sh (one core per worker), a collection of three shards at
# RF 1 and one at RF 3, the same dataset ingested into each through the streaming upsert
# (acknowledged once durable: on a majority of replicas at RF 3), then searched with
# eventual and with linearizable consistency. The gateway runs without its search cache,
# so eventual searches reach the cores too. Prints one `vectron bench` JSON line per run,
# each with an "rf", a "run" and the CPU seconds the cluster spent ("cluster_cpu_s"),
# then how many RF 3 leaders each core held.
#
#   benches/replication.sh [DATASET_DIR]     (default ../shared/data/wiki-minilm)
#
# $SECONDS_PER_RUN sets each search loop (default 15), $CONCURRENCY its clients
# (default 16). The cluster lives in a temporary folder and is stopped at the end; the
# ports are those of scripts/cluster.sh, so no other cluster may run meanwhile.
set -euo pipefail
cd "$(dirname "$0")/.."

DATASET=${1:-../shared/data/wiki-minilm}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-15}
CONCURRENCY=${CONCURRENCY:-16}
[[ -f "$DATASET/base.fvecs" ]] || { echo "replication: no dataset at $DATASET" >&2; exit 2; }

cargo build --release --quiet --bin vectron
export VECTRON_BIN=target/release/vectron
WORK=$(mktemp -d)
export VECTRON_CLUSTER_DIR="$WORK/cluster"
export VECTRON_GATEWAY_ARGS=--no-search-cache
trap 'scripts/cluster.sh down >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
scripts/cluster.sh up >"$WORK/up.log"

# CPU seconds the cluster's workers and gateway have used so far.
cluster_cpu() {
  local total=0 file pid ticks
  for file in "$VECTRON_CLUSTER_DIR"/pids/worker-*.pid "$VECTRON_CLUSTER_DIR"/pids/gateway.pid; do
    pid=$(<"$file")
    ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    total=$((total + ticks))
  done
  awk -v t="$total" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }'
}

# One `vectron bench` run, its JSON line tagged with the RF, the run and the CPU seconds
# the cluster spent on it.
bench() {
  local rf=$1 run=$2 before line
  shift 2
  before=$(cluster_cpu)
  line=$("$VECTRON_BIN" bench --dataset "$DATASET" --collection "rf$rf" --shards 3 \
    --seconds "$SECONDS_PER_RUN" --concurrency "$CONCURRENCY" "$@")
  local spent
  spent=$(awk -v a="$(cluster_cpu)" -v b="$before" 'BEGIN { printf "%.2f", a - b }')
  echo "$line" | sed "s/^{/{\"rf\":$rf,\"run\":\"$run\",\"cluster_cpu_s\":$spent,/"
}

for rf in 1 3; do
  # The ingest run's CPU is the writes and the indexing on every replica (the bench
  # waits until every replica indexed everything), its recall pass and a 1 s search loop.
  SECONDS_PER_RUN=1 bench "$rf" ingest --create --replication-factor "$rf" --cached
  bench "$rf" eventual --skip-ingest --cached
  bench "$rf" linearizable --skip-ingest
done

# Where the RF 3 shards' leaders were (placement spreads them over the cores).
leaders='
import json, sys
leads = {}
for c in json.load(sys.stdin)["cores"]:
    name = "%s/%s" % (c.get("worker_id", "?"), c.get("core", 0))
    leads[name] = sum(1 for s in c.get("shards", [])
                      if s.get("collection") == "rf3" and s.get("replica", {}).get("leader"))
print(json.dumps({"rf3_leaders_per_core": leads}))
'
curl -s "http://${VECTRON_HTTP_ADDR:-127.0.0.1:6333}/v1/stats/cores" | python3 -c "$leaders"
