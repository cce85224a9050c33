#!/usr/bin/env python3
"""Times whole commands taken in turns, so that a noisy machine slows each of them alike.

    benches/interleaved.py ROUNDS 'LABEL=[VAR=value ...] COMMAND ...' ...

Each command runs ROUNDS times; the order of the commands alternates each round. `{store}`
in a command is replaced by a store file of the label's own, under $STORES (default
/tmp/interleaved-stores), emptied first unless KEEP=1. Each command runs 3 times before the
timing, with its output thrown away; a failed run is reported. Prints the minimum, the first
quartile and the median in milliseconds, from start to exit as the parent sees it
(posix_spawn and wait). docs/PERFORMANCE.md has the figures taken with it.

Example, two builds of rhaiflow side by side:

    benches/interleaved.py 60 'old=/tmp/old run -q examples/hello.rhai --store {store}' \\
                              'new=target/release/rhaiflow run -q examples/hello.rhai --store {store}'
"""
import os
import shlex
import shutil
import statistics
import sys
import time


def variants(specs, stores):
    for spec in specs:
        label, command = spec.split("=", 1)
        folder = os.path.join(stores, label)
        if not os.environ.get("KEEP"):
            shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder, exist_ok=True)
        argv = shlex.split(command.replace("{store}", os.path.join(folder, "s.db")))
        env = dict(os.environ)
        while argv and "=" in argv[0] and not argv[0].startswith("/"):
            name, value = argv.pop(0).split("=", 1)
            env[name] = value
        yield label, argv, env


def once(argv, env, devnull):
    started = time.perf_counter()
    quiet = [(os.POSIX_SPAWN_DUP2, devnull, 1), (os.POSIX_SPAWN_DUP2, devnull, 2)]
    pid = os.posix_spawnp(argv[0], argv, env, file_actions=quiet)
    _, status = os.waitpid(pid, 0)
    elapsed = (time.perf_counter() - started) * 1000
    if status != 0:
        print(f"failed ({status}): {shlex.join(argv)}", file=sys.stderr)
    return elapsed


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    rounds = int(sys.argv[1])
    runs = list(variants(sys.argv[2:], os.environ.get("STORES", "/tmp/interleaved-stores")))
    devnull = os.open(os.devnull, os.O_WRONLY)
    for _, argv, env in runs:
        for _ in range(3):
            once(argv, env, devnull)
    times = {label: [] for label, _, _ in runs}
    for round in range(rounds):
        for label, argv, env in runs if round % 2 == 0 else reversed(runs):
            times[label].append(once(argv, env, devnull))
    for label, _, _ in runs:
        t = sorted(times[label])
        print(f"{label:>12}: min {t[0]:.2f}  p25 {t[len(t) // 4]:.2f}  median {statistics.median(t):.2f} ms")


if __name__ == "__main__":
    main()
