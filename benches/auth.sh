#!/usr/bin/env bash
# The price of authentication on the search path: one `vectron dev` data directory,
# served alternately without and with --auth (A B A B ...), searched through the
# gateway by `vectron bench` (no search cache, so every search reaches the cores) with
# the same queries. With auth on, dev's gateway, control plane and worker also present
# the cluster key to each other (so the gateway's call to the core carries and the core
# checks it), and every call presents $CREDENTIAL:
#   key    (default) a key made by `vectron keys create` (a SHA-256 of its secret and a
#          table lookup per call);
#   token  a token from `vectron keys token` (an HS256 signature and its JSON claims
#          checked per call);
#   plan   a key on a plan whose rate it never reaches (the key's work, and its caller's
#          allowance counted per call).
# Prints one `vectron bench` JSON line per run, tagged with "auth", "credential" and "run".
#
#   benches/auth.sh [DATASET_DIR]     (default ../shared/data/wiki-minilm)
#
# $ROUNDS sets the A B pairs (default 3), $SECONDS_PER_RUN each search loop (default
# 10), $CONCURRENCY its clients (default 1: latency, not throughput). Ports 16333/16334.
set -euo pipefail
cd "$(dirname "$0")/.."

DATASET=${1:-../shared/data/wiki-minilm}
ROUNDS=${ROUNDS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
CONCURRENCY=${CONCURRENCY:-1}
CREDENTIAL=${CREDENTIAL:-key}
case "$CREDENTIAL" in key | token | plan) ;; *) echo "auth: CREDENTIAL is key, token or plan" >&2; exit 2 ;; esac
[[ -f "$DATASET/base.fvecs" ]] || { echo "auth: no dataset at $DATASET" >&2; exit 2; }

cargo build --release --quiet --bin vectron
BIN=target/release/vectron
WORK=$(mktemp -d)
ADDR=127.0.0.1:16334
ADMIN=bench-admin-key-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
PID=
stop() { [[ -n "$PID" ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; PID=; }
trap 'stop; rm -rf "$WORK"' EXIT

# Starts `vectron dev` on the data directory with extra flags; waits for its ready line.
start() {
  "$BIN" dev --data-dir "$WORK/data" --grpc-addr "$ADDR" --http-addr 127.0.0.1:16333 \
    --no-search-cache "$@" >"$WORK/ready" 2>>"$WORK/dev.log" &
  PID=$!
  for _ in $(seq 600); do grep -q '"event":"ready"' "$WORK/ready" 2>/dev/null && return; sleep 0.1; done
  echo "auth: vectron dev did not start; see $WORK/dev.log" >&2
  exit 1
}

bench() {
  local auth=$1 run=$2 line
  shift 2
  line=$("$BIN" bench --addr "$ADDR" --dataset "$DATASET" --collection auth \
    --seconds "$SECONDS_PER_RUN" --concurrency "$CONCURRENCY" "$@")
  echo "$line" | sed "s/^{/{\"auth\":$auth,\"credential\":\"$CREDENTIAL\",\"run\":$run,/"
}

# The token secret every authenticated start shares, so that a token outlives a restart.
head -c 48 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$WORK/jwt-secret"
AUTH=(--auth --admin-key "$ADMIN" --jwt-secret-file "$WORK/jwt-secret")

# Ingest once, with auth off, and make the key the authenticated runs present.
start
SECONDS_PER_RUN=1 bench false 0 --create --shards 1 >/dev/null
stop
start "${AUTH[@]}"
case "$CREDENTIAL" in
  key) KEY=$("$BIN" keys create --role read --addr "$ADDR" --api-key "$ADMIN" | sed -n 2p) ;;
  token) KEY=$("$BIN" keys token --subject bench --role read --ttl 86400 --addr "$ADDR" --api-key "$ADMIN") ;;
  plan)
    "$BIN" plans set bench --rps 1000000 --burst 1000000 --addr "$ADDR" --api-key "$ADMIN" >/dev/null
    KEY=$("$BIN" keys create --role read --plan bench --addr "$ADDR" --api-key "$ADMIN" | sed -n 2p)
    ;;
esac
stop

for ((round = 1; round <= ROUNDS; round++)); do
  start
  bench false "$round" --skip-ingest
  stop
  start "${AUTH[@]}"
  bench true "$round" --skip-ingest --api-key "$KEY"
  stop
done
