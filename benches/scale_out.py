#!/usr/bin/env python3
"""The scale-out benchmarks (docs/PERFORMANCE.md): run by benches/scale_out.sh beside a
throw-away PostgreSQL server (PGHOST/PGPORT/PGUSER set).

- chains: a durable chain of closure tasks and a chain of no-op tasks, on SQLite and on
  PostgreSQL (same binary, same machine);
- claim latency: executions submitted one by one to an idle worker; how long each waited in
  the queue (from its enqueue to its claim, as the worker measures it in the database);
- executions through the queue: N no-op executions submitted, then drained by two workers;
- process tasks through the queue: one execution sending N `exec true` tasks to a queue two
  workers listen on (and the same tasks run here, without the queue: the cost of a process);
- no-op tasks through the queue: one execution sending N `noop(name, #{queue})` tasks (the
  queue's own cost: send, claim, outcome, read back, each batched); then the claim tables'
  size after rounds of such tasks, to show it follows the backlog, not the history.
"""
import argparse, os, re, statistics, subprocess, tempfile, time

ap = argparse.ArgumentParser()
ap.add_argument("--bin", required=True)
ap.add_argument("--chain", type=int, default=20000)
ap.add_argument("--noop-chain", type=int, default=100000)
ap.add_argument("--latency", type=int, default=200)
ap.add_argument("--executions", type=int, default=1000)
ap.add_argument("--tasks", type=int, default=2000)
ap.add_argument("--noop-tasks", type=int, default=100000)
ap.add_argument("--rounds", type=int, default=10)
ap.add_argument("--round-tasks", type=int, default=10000)
a = ap.parse_args()
tmp = tempfile.mkdtemp(prefix="scale-out-")


def db(name):
    subprocess.run(["createdb", name], check=True)
    return "postgres:///" + name


def script(name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def timed(argv, env=None):
    start = time.perf_counter()
    subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def worker(store, *args):
    """A worker whose lines go to a file (a pipe nobody reads would fill and stall it)."""
    env = dict(os.environ, RHAIFLOW_STORE=store)
    log = tempfile.NamedTemporaryFile("w+", dir=tmp, suffix=".log", delete=False)
    w = subprocess.Popen([a.bin, "worker", *args], env=env, stderr=log, text=True)
    w.log = log.name
    return w


closures = script("closures.rhai", "let g = graph_mode(); let s = g.sequence();\n"
                  "for i in 0..params.n { s.add(task(`t${i}`, || 1)); }\ng.execute();\n")
noops = script("noops.rhai", "let g = graph_mode(); let s = g.sequence();\n"
               "for i in 0..params.n { s.add(noop(`t${i}`)); }\ng.execute();\n")
print("## chains (one process, durable: a closure's success is committed before the next starts)")
for label, path, n in [("closure chain", closures, a.chain), ("no-op chain", noops, a.noop_chain)]:
    sqlite = timed([a.bin, "run", path, "-q", "--store", os.path.join(tmp, f"{n}.db"), "-p", f"n={n}"])
    pg = timed([a.bin, "run", path, "-q", "--store", db(f"chain_{label[0]}_{n}"), "-p", f"n={n}"])
    print(f"{label:14} N={n:>7}: SQLite {sqlite:7.2f} s, PostgreSQL {pg:7.2f} s ({pg / sqlite:.2f}x)")

print("## claim latency (enqueue -> claimed by an idle worker)")
store = db("latency")
one = script("one.rhai", "let g = graph_mode(); g.add_task(noop(\"a\")); g.execute();\n")
w = worker(store)
time.sleep(1.5)
env = dict(os.environ, RHAIFLOW_STORE=store)
for _ in range(a.latency):
    subprocess.run([a.bin, "run", one, "--submit"], check=True, env=env, capture_output=True)
    time.sleep(0.02)
time.sleep(1.0)
w.terminate()
w.wait()
err = open(w.log).read()
waits = sorted(float(m) for m in re.findall(r"waited ([0-9.]+) ms", err))
q = lambda p: waits[min(len(waits) - 1, int(p * len(waits)))]
print(f"{len(waits)} claims: p50 {q(0.5):.1f} ms, p90 {q(0.9):.1f} ms, p99 {q(0.99):.1f} ms, max {waits[-1]:.1f} ms")

print("## executions through the queue (two workers, --concurrency 8 each)")
store = db("executions")
env = dict(os.environ, RHAIFLOW_STORE=store)
start = time.perf_counter()
for _ in range(a.executions):
    subprocess.run([a.bin, "run", one, "--submit"], check=True, env=env, capture_output=True)
submitted = time.perf_counter() - start
start = time.perf_counter()
workers = [worker(store, "--drain", "--concurrency", "8") for _ in range(2)]
for w in workers:
    w.wait()
drained = time.perf_counter() - start
print(f"{a.executions} submitted in {submitted:.2f} s ({a.executions / submitted:.0f}/s, a process each), "
      f"run in {drained:.2f} s ({a.executions / drained:.0f} executions/s)")

def fan_out(name, task):
    """A script adding params.n tasks side by side, `task` making each (`i` its number)."""
    return script(name, f"let g = graph_mode();\nfor i in 0..params.n {{ g.add_task({task}); }}\ng.execute();\n")


class Workers:
    """Two workers on queue `q` of `store`, stopped when the block ends."""

    def __init__(self, store, concurrency):
        self.workers = [worker(store, "--queue", "q", "--concurrency", str(concurrency)) for _ in range(2)]
        time.sleep(1.5)

    def __enter__(self):
        return self

    def __exit__(self, *_):
        for w in self.workers:
            w.terminate()
            w.wait()


print("## process tasks through the queue (one execution, two workers on the queue, --concurrency 8 each)")
store = db("tasks")
fan = fan_out("fan.rhai", 'exec(`t${i}`, ["true"], #{queue: "q"})')
with Workers(store, 8):
    took = timed([a.bin, "run", fan, "-q", "--store", store, "-p", f"n={a.tasks}"])
print(f"{a.tasks} tasks in {took:.2f} s ({a.tasks / took:.0f} tasks/s)")
here = fan_out("here.rhai", 'exec(`t${i}`, ["true"])')
took = timed([a.bin, "run", here, "-q", "--store", os.path.join(tmp, "here.db"), "-p", f"n={a.tasks}"])
print(f"{a.tasks} tasks here, without the queue: {took:.2f} s ({a.tasks / took:.0f} tasks/s)")


def sql(database, text):
    out = subprocess.run(["psql", "-d", database, "-Atc", text], check=True, capture_output=True, text=True)
    return out.stdout.strip()


def claim_tables(database):
    return sql(database, "SELECT pg_total_relation_size('rhaiflow_task_queue') + "
                         "pg_total_relation_size('rhaiflow_task_runs')")


print("## no-op tasks through the queue (one execution, two workers on the queue, --concurrency 256 each)")
store = db("noops")
pings = fan_out("pings.rhai", 'noop(`t${i}`, #{queue: "q"})')
with Workers(store, 256):
    empty = int(claim_tables("noops"))
    sizes = []
    for r in range(a.rounds):
        timed([a.bin, "run", pings, "-q", "--store", store, "-p", f"n={a.round_tasks}"])
        sql("noops", "VACUUM rhaiflow_task_queue, rhaiflow_task_runs")  # what autovacuum does
        sizes.append(int(claim_tables("noops")))
    took = timed([a.bin, "run", pings, "-q", "--store", store, "-p", f"n={a.noop_tasks}"])
print(f"{a.noop_tasks} tasks in {took:.2f} s ({a.noop_tasks / took:.0f} tasks/s); "
      f"rows left: {sql('noops', 'SELECT count(*) FROM rhaiflow_task_queue')} waiting, "
      f"{sql('noops', 'SELECT count(*) FROM rhaiflow_task_runs')} running")
kib = lambda b: f"{b / 1024:.0f} KiB"
print(f"claim tables after rounds of {a.round_tasks} tasks (a VACUUM after each, as autovacuum): "
      f"empty {kib(empty)}, round 1 {kib(sizes[0])}, round {a.rounds // 2} {kib(sizes[a.rounds // 2 - 1])}, "
      f"round {a.rounds} {kib(sizes[-1])}")
