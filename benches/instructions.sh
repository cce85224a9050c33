#!/usr/bin/env bash
# Instructions per task, counted by callgrind: unlike wall time, the same on a busy machine,
# so two builds can be compared exactly (see docs/PERFORMANCE.md).
#
#   benches/instructions.sh [N] [BINARY]      # default N=20000, target/release/rhaiflow
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20000}
bin=${2:-target/release/rhaiflow}
[ -x "$bin" ] || cargo build --release --quiet
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind; }
count() {
    local out
    out=$(mktemp)
    valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" run -q "benches/workloads/$1.rhai" -p "n=$2" --ephemeral \
        >/dev/null 2>&1
    grep -E '^(summary|totals):' "$out" | head -1 | awk '{print $2}'
    rm -f "$out"
}
startup=$(count noop_chain 0)
echo "startup (N = 0): $startup instructions"
printf '%-14s %14s %16s\n' workload instructions "per task"
for w in build_chain noop_chain noop_fanout closures flaky_retry; do
    total=$(count "$w" "$n")
    printf '%-14s %14s %16s\n' "$w" "$total" "$(( (total - startup) / n ))"
done
