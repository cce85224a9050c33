#!/usr/bin/env bash
# Instructions per task, counted by callgrind: unlike wall time, the same on a busy machine,
# so two builds can be compared exactly (see docs/PERFORMANCE.md).
#
#   benches/instructions.sh [N] [BINARY]      # default N=20000, target/release/rhaiflow
#
# In memory (--ephemeral), then durable (a fresh SQLite store per run); each against its own
# startup, measured at N = 0.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20000}
bin=${2:-target/release/rhaiflow}
[ -x "$bin" ] || cargo build --release --quiet
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind; }
stores=$(mktemp -d)
trap 'rm -rf "$stores"' EXIT
# count WORKLOAD N [durable]
count() {
    local out where
    out=$(mktemp)
    where=(--ephemeral)
    [ "${3:-}" = durable ] && where=(--store "$(mktemp -d -p "$stores")/store.db")
    valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" run -q "benches/workloads/$1.rhai" -p "n=$2" "${where[@]}" \
        >/dev/null 2>&1
    grep -E '^(summary|totals):' "$out" | head -1 | awk '{print $2}'
    rm -f "$out"
}
startup=$(count noop_chain 0)
echo "startup (N = 0): $startup instructions in memory"
printf '%-22s %14s %16s\n' workload instructions "per task"
for w in build_chain noop_chain build_fanout noop_fanout build_closures closures flaky_retry; do
    total=$(count "$w" "$n")
    printf '%-22s %14s %16s\n' "$w" "$total" "$(( (total - startup) / n ))"
done
startup=$(count noop_chain 0 durable)
echo "startup (N = 0): $startup instructions durable"
for w in noop_chain closures; do
    total=$(count "$w" "$n" durable)
    printf '%-22s %14s %16s\n' "durable $w" "$total" "$(( (total - startup) / n ))"
done
