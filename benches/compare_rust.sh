#!/usr/bin/env bash
# rhaiflow beside the Rust DAG crate dagx on the same shapes (a chain, N independent tasks,
# layers of 100), no-op tasks: one table of time and of callgrind's instructions per task (see
# docs/PERFORMANCE.md, "The floor and the peers").
#
#   benches/compare_rust.sh                             # N = 10,000 and 100,000; callgrind at 20,000
#   SIZES=10000 INSTRUCTIONS=0 benches/compare_rust.sh  # times only
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind; }
cargo build --release --quiet
dagx=$(benches/bench-binary rust_dag)
echo "rhaiflow $(target/release/rhaiflow --version | cut -d' ' -f2) at $(git rev-parse --short HEAD), dagx $(grep -A1 '^name = "dagx"' Cargo.lock | sed -n 's/version = "\(.*\)"/\1/p'), $(nproc) cores"
python3 benches/compare/rust_dag.py --rhaiflow target/release/rhaiflow --dagx "$dagx" \
    --sizes "${SIZES:-10000,100000}" --instructions "${INSTRUCTIONS:-20000}"
