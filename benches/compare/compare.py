"""Runs the same workloads in rhaiflow and in OpenStack TaskFlow and prints a table of
per-task times. See docs/PERFORMANCE.md; started by benches/compare.sh.

usage: compare.py --rhaiflow BIN --python VENV_PYTHON [--sizes 1000,10000,100000]
                  [--rhaiflow-only 1000000] [--timeout SECS]
"""
import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOADS = os.path.join(os.path.dirname(HERE), "workloads")

# (name in the table, rhaiflow script, TaskFlow workload)
CASES = [
    ("chain", "noop_chain.rhai", "chain"),
    ("independent", "noop_independent.rhai", "independent"),
    ("layers of 100", "noop_layers.rhai", "layers"),
    ("fail once, retry", "flaky_retry.rhai", "flaky"),
]


def time_rhaiflow(binary, script, n, store):
    args = [binary, "run", os.path.join(WORKLOADS, script), "-p", "n=%d" % n, "-q"]
    args += ["--store", store] if store else ["--ephemeral"]
    best = None
    for _ in range(3 if n <= 100000 else 1):
        start = time.perf_counter()
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        took = time.perf_counter() - start
        best = took if best is None else min(best, took)
    return best


def time_taskflow(python, workload, n, timeout):
    try:
        out = subprocess.run([python, os.path.join(HERE, "taskflow_workloads.py"), workload, str(n)],
                             check=True, capture_output=True, text=True, timeout=timeout)
        return float(out.stdout.strip().splitlines()[-1])
    except subprocess.TimeoutExpired:
        return None


def micros(seconds, n):
    return "—" if seconds is None else "%.1f" % (seconds / n * 1e6)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rhaiflow", required=True)
    ap.add_argument("--python", required=True)
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--rhaiflow-only", default="1000000")
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--store", help="also time rhaiflow with the durable store in this folder")
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",") if s]
    print("| workload | N | rhaiflow µs/task | rhaiflow durable µs/task | TaskFlow µs/task | TaskFlow ÷ rhaiflow |")
    print("|---|---|---|---|---|---|")
    for label, script, workload in CASES:
        skip_taskflow = False
        for n in sizes + [int(s) for s in a.rhaiflow_only.split(",") if s]:
            ours = time_rhaiflow(a.rhaiflow, script, n, None)
            durable = time_rhaiflow(a.rhaiflow, script, n, os.path.join(a.store, "%s-%d" % (workload, n))) if a.store else None
            theirs = None
            if n in sizes and not skip_taskflow:
                theirs = time_taskflow(a.python, workload, n, a.timeout)
                # A size that timed out: the bigger ones would too.
                skip_taskflow = theirs is None
            ratio = "—" if theirs is None else "%.0f×" % (theirs / ours)
            print("| %s | %d | %s | %s | %s | %s |" % (label, n, micros(ours, n), micros(durable, n), micros(theirs, n), ratio))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
