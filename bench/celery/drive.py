"""Measures Celery end to end, the way a Celery user does it: `.delay()` then
`.get()`. Prints one JSON object: throughput of N no-op tasks with results
stored (first submit to last result), and the round trip of sequential
submit-and-wait calls (p50, p99)."""

import json
import sys
import time

from tasks import noop


def percentile(sorted_values, fraction):
    index = min(len(sorted_values) - 1, int(round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def main():
    throughput_tasks = int(sys.argv[1])
    rtt_tasks = int(sys.argv[2])
    # Warm up connections and the worker.
    for _ in range(50):
        noop.delay().get(timeout=30)

    started = time.perf_counter()
    results = [noop.delay() for _ in range(throughput_tasks)]
    submitted = time.perf_counter() - started
    for result in results:
        result.get(timeout=300)
    elapsed = time.perf_counter() - started

    rtts = []
    for _ in range(rtt_tasks):
        t0 = time.perf_counter()
        noop.delay().get(timeout=30)
        rtts.append((time.perf_counter() - t0) * 1000.0)
    rtts.sort()
    print(json.dumps({
        "celery_redis_tasks": throughput_tasks,
        "celery_redis_seconds": elapsed,
        "celery_redis_tasks_per_s": throughput_tasks / elapsed,
        "celery_redis_submit_per_s": throughput_tasks / submitted,
        "celery_rtt_p50_ms": percentile(rtts, 0.50),
        "celery_rtt_p99_ms": percentile(rtts, 0.99),
    }))


if __name__ == "__main__":
    main()
