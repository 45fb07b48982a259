#!/usr/bin/env bash
# End to end over real processes: one client request for 0..=MAX with MINERS miner
# processes (THREADS threads each), against (1) a plain server, (2) a durable server
# (--data-dir) and (3) three replicas (--cluster). Prints the client's wall time per mode,
# all measured in the same run. Not a test: timings on a shared machine are noisy.
#   cargo build --release -p apps && apps/scripts/e2e-replicas.sh
set -euo pipefail
BIN=${BIN:-target/release}
MAX=${MAX:-1000000000}
MINERS=${MINERS:-2}
THREADS=${THREADS:-1}
MSG=${MSG:-replicas}
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

measure() { # name, address list
    local name=$1 list=$2 i
    for ((i = 0; i < MINERS; i++)); do
        "$BIN/miner" "$list" --threads "$THREADS" 2>/dev/null &
        pids+=($!)
    done
    sleep 2 # let the miners join (a benchmark, not a test)
    local start end out
    start=$(date +%s.%N)
    out=$("$BIN/client" "$list" "$MSG" "$MAX")
    end=$(date +%s.%N)
    printf '%-28s %8.2f s   %s\n' "$name" "$(echo "$end - $start" | bc)" "$out"
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    pids=()
}

p=$(free_port)
"$BIN/server" "$p" 2>/dev/null &
pids+=($!)
measure "plain server" "127.0.0.1:$p"

p=$(free_port)
"$BIN/server" "$p" --data-dir "$tmp/single" 2>/dev/null &
pids+=($!)
sleep 6 # its election: 10 ticks of half a second at the default 2 s epoch
measure "durable server (--data-dir)" "127.0.0.1:$p"

ports=($(free_port) $(free_port) $(free_port))
list="127.0.0.1:${ports[0]},127.0.0.1:${ports[1]},127.0.0.1:${ports[2]}"
for i in 1 2 3; do
    "$BIN/server" "${ports[$((i - 1))]}" --cluster "$list" --id "$i" --data-dir "$tmp/r$i" 2>/dev/null &
    pids+=($!)
done
sleep 6
measure "3 replicas (--cluster)" "$list"
