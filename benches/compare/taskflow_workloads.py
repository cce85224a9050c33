"""The comparison workloads in OpenStack TaskFlow, timed the way rhaiflow's are: building the
flow, loading the engine and running it, in one process.

usage: python taskflow_workloads.py WORKLOAD N     prints the seconds it took
"""
import sys
import time

import taskflow.engines
from taskflow import retry, task
from taskflow.patterns import graph_flow, linear_flow, unordered_flow


class Noop(task.Task):
    def execute(self):
        pass


class FailsOnce(task.Task):
    """Raises on its first execution, succeeds on the second (after the retry)."""

    seen = set()

    def execute(self):
        if self.name not in FailsOnce.seen:
            FailsOnce.seen.add(self.name)
            raise RuntimeError("flaky")


def chain(n):
    flow = linear_flow.Flow("chain")
    flow.add(*[Noop(name="t%d" % i) for i in range(n)])
    return flow, "serial"


def independent(n):
    flow = unordered_flow.Flow("independent")
    flow.add(*[Noop(name="t%d" % i) for i in range(n)])
    return flow, "parallel"


def layers(n, width=100):
    flow = graph_flow.Flow("layers")
    previous = []
    for layer in range(max(1, n // width)):
        current = [Noop(name="t%d_%d" % (layer, i)) for i in range(width)]
        flow.add(*current)
        if previous:
            for i, t in enumerate(current):
                flow.link(previous[i], t)
        previous = current
    return flow, "parallel"


def flaky(n):
    # A retry controller per task: each task is its own one-task flow that TaskFlow retries.
    flow = unordered_flow.Flow("flaky")
    for i in range(n):
        sub = linear_flow.Flow("f%d" % i, retry=retry.Times(2, name="r%d" % i))
        sub.add(FailsOnce(name="t%d" % i))
        flow.add(sub)
    return flow, "parallel"


WORKLOADS = {"chain": chain, "independent": independent, "layers": layers, "flaky": flaky}


def main():
    name, n = sys.argv[1], int(sys.argv[2])
    start = time.perf_counter()
    flow, engine = WORKLOADS[name](n)
    taskflow.engines.load(flow, engine=engine).run()
    print("%.6f" % (time.perf_counter() - start))


if __name__ == "__main__":
    main()
