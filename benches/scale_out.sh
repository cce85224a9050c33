#!/usr/bin/env bash
# The scale-out benchmarks (benches/scale_out.py) on a throw-away PostgreSQL server with
# durable commits (fsync on), beside SQLite on the same machine. Figures: docs/PERFORMANCE.md.
#   benches/scale_out.sh
#   benches/scale_out.sh --chain 2000 --noop-chain 10000 --latency 50 --executions 100 --tasks 200
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
exec scripts/with-postgres python3 -u benches/scale_out.py --bin target/release/rhaiflow "$@"
