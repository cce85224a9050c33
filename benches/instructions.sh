#!/usr/bin/env bash
# Instructions per task, counted by callgrind: unlike wall time, the same on a busy machine,
# so two builds can be compared exactly (see docs/PERFORMANCE.md).
#
#   benches/instructions.sh [N] [BINARY]      # default N=20000, target/release/rhaiflow
#
# In memory (--ephemeral), then durable (a fresh SQLite store per run); each against its own
# startup, measured at N = 0. Then the floor (benches/floor.rs): the build loops evaluated by
# Rhai alone, on the engine a run starts from, with host functions that only record; per
# iteration beside rhaiflow's build of the same loop (FLOOR=0 leaves it out; the floor is built
# from this tree, whatever BINARY is).
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
memory_startup=$startup
echo "startup (N = 0): $startup instructions in memory"
printf '%-22s %14s %16s\n' workload instructions "per task"
declare -A per_task
for w in build_chain noop_chain build_fanout noop_fanout build_closures closures flaky_retry; do
    total=$(count "$w" "$n")
    per_task[$w]=$(( (total - startup) / n ))
    printf '%-22s %14s %16s\n' "$w" "$total" "${per_task[$w]}"
done
startup=$(count noop_chain 0 durable)
echo "startup (N = 0): $startup instructions durable"
for w in noop_chain closures; do
    total=$(count "$w" "$n" durable)
    printf '%-22s %14s %16s\n' "durable $w" "$total" "$(( (total - startup) / n ))"
done
[ "${FLOOR:-1}" = 0 ] && exit 0
floor=$(benches/bench-binary floor)
# floor_count WORKLOAD N: the floor program's instructions for one evaluation
floor_count() {
    local out
    out=$(mktemp)
    valgrind --tool=callgrind --callgrind-out-file="$out" "$floor" "$1" "$2" >/dev/null 2>&1
    grep -E '^(summary|totals):' "$out" | head -1 | awk '{print $2}'
    rm -f "$out"
}
startup=$memory_startup
floor_start=$(floor_count build_chain 0)
echo "floor: Rhai alone (benches/floor.rs), startup (N = 0) $floor_start instructions; per iteration at N = $n"
printf '%-22s %14s %16s %12s\n' workload floor "rhaiflow build" distance
# The floor's script, then rhaiflow's build-only script of the same loop.
for pair in build_chain:build_chain build_fanout:build_fanout build_closures:build_closures \
    build_independent:build_independent build_pushed:build_pushed noop_layers:build_layers; do
    fw=${pair%%:*} rw=${pair##*:}
    ours=${per_task[$rw]:-}
    if [ -z "$ours" ]; then
        total=$(count "$rw" "$n")
        ours=$(( (total - startup) / n ))
    fi
    low=$(( ($(floor_count "$fw" "$n") - floor_start) / n ))
    printf '%-22s %14s %16s %12s\n' "$rw" "$low" "$ours" "$(( ours - low ))"
done
