"""The Celery side of `bench/run queues`: the stack hippo replaces, configured
as the reference project configures it (Redis broker and result backend,
acks late, prefetch 4), with one no-op task."""

import os

from celery import Celery

redis_url = os.environ["BENCH_REDIS_URL"]
app = Celery("bench", broker=f"{redis_url}/1", backend=f"{redis_url}/2")
app.conf.update(
    task_acks_late=True,
    worker_prefetch_multiplier=4,
    result_expires=3600,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
)


@app.task(name="bench.noop")
def noop():
    return None
