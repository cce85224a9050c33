"""Runs rhaiflow and the Rust DAG crate dagx (benches/rust_dag.rs) on the same shapes and prints
one table: time per task, and callgrind's instructions per task. See docs/PERFORMANCE.md, "The
floor and the peers"; started by benches/compare_rust.sh.

usage: rust_dag.py --rhaiflow BIN --dagx BIN [--sizes 10000,100000] [--instructions 20000]

rhaiflow: the whole command `rhaiflow run -q --ephemeral X.rhai -p n=N` (process start, compile,
building the graph in Rhai, running it), best of 3; its build-only twin the same way; its
execution per task = whole minus build (the process start cancels out). dagx: in one process,
building the graph in Rust (best of 5) and running it on a tokio multi-threaded runtime (best of
5). Instructions: callgrind at N and at N = 0, the difference divided by N (the process start
cancels out), for the whole and for the build alone.
"""
import argparse
import os
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOADS = os.path.join(os.path.dirname(HERE), "workloads")

# (shape, rhaiflow script, its build-only twin)
SHAPES = [
    ("chain", "noop_chain.rhai", "build_chain.rhai"),
    ("independent", "noop_independent.rhai", "build_independent.rhai"),
    ("layers", "noop_layers.rhai", "build_layers.rhai"),
]


def rhaiflow_args(binary, script, n):
    return [binary, "run", "-q", "--ephemeral", os.path.join(WORKLOADS, script), "-p", "n=%d" % n]


def best_seconds(args, runs=3):
    best = None
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        took = time.perf_counter() - start
        best = took if best is None else min(best, took)
    return best


def instructions(args):
    with tempfile.NamedTemporaryFile(suffix=".callgrind") as out:
        subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out.name] + args,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for line in open(out.name):
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise RuntimeError("no total in callgrind's output")


def per_task(args_at, n):
    """Instructions per task: at N minus at N = 0, divided by N."""
    return (instructions(args_at(n)) - instructions(args_at(0))) / n


def row(shape, n, unit, whole, build, dagx_build, dagx_run):
    fmt = "%.3f" if unit == "µs" else "%.0f"
    execution = whole - build
    cells = [shape, "{:,}".format(n), unit, fmt % whole, fmt % build, fmt % execution,
             fmt % dagx_build, fmt % dagx_run, fmt % (dagx_build + dagx_run),
             "%.1f×" % (execution / dagx_run), "%.1f×" % (whole / (dagx_build + dagx_run))]
    print("| " + " | ".join(cells) + " |", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rhaiflow", required=True)
    ap.add_argument("--dagx", required=True)
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--instructions", type=int, default=20000, help="N under callgrind; 0 for none")
    a = ap.parse_args()
    print("| shape | N | unit (per task) | rhaiflow whole | rhaiflow build | rhaiflow execution "
          "| dagx build | dagx run | dagx build + run | rhaiflow execution ÷ dagx run | rhaiflow whole ÷ dagx build + run |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for shape, script, twin in SHAPES:
        for n in [int(s) for s in a.sizes.split(",") if s]:
            whole = best_seconds(rhaiflow_args(a.rhaiflow, script, n)) / n * 1e6
            build = best_seconds(rhaiflow_args(a.rhaiflow, twin, n)) / n * 1e6
            out = subprocess.run([a.dagx, "time", shape, str(n)], check=True, capture_output=True, text=True)
            dagx_build, dagx_run = (float(x) for x in out.stdout.split())
            row(shape, n, "µs", whole, build, dagx_build, dagx_run)
        n = a.instructions
        if n:
            whole = per_task(lambda k: rhaiflow_args(a.rhaiflow, script, k), n)
            build = per_task(lambda k: rhaiflow_args(a.rhaiflow, twin, k), n)
            dagx_whole = per_task(lambda k: [a.dagx, shape, str(k)], n)
            dagx_build = per_task(lambda k: [a.dagx, shape, str(k), "build"], n)
            row(shape, n, "instructions", whole, build, dagx_build, dagx_whole - dagx_build)


if __name__ == "__main__":
    main()
