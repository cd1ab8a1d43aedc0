"""`AsyncClient` against a real `hippo serve`: the same routes, awaited."""

from __future__ import annotations

import asyncio
import time

import pytest

from hippo_client import AsyncClient, HippoError, TaskFailed, TaskRevoked, TaskTimeout

from conftest import SLOW_KEY


def test_async_tasks_memory_routes_and_errors():
    async def main():
        async with AsyncClient() as client:
            task = await client.send_task(
                "memory.create", {"text": "Dmitri keeps bees on his roof", "user_id": "dmitri"})
            created = await task.get(timeout=30)
            assert created["action"] == "created" and await task.status() == "SUCCESS"
            memory_id = created["memory"]["id"]
            found = await client.recall(query="what does dmitri look after?", user_id="dmitri")
            assert found["results"][0]["memory"]["id"] == memory_id
            # Two requests at once on one client.
            got, page = await asyncio.gather(
                client.get_memory(memory_id, "dmitri"),
                client.query_memories(user_id="dmitri"))
            assert got["memory"]["id"] == memory_id and len(page["memories"]) == 1
            with pytest.raises(HippoError) as refused:
                await client.recall(query="bees", user_id="dmitri", k=0)
            assert (refused.value.status, refused.value.field) == (400, "k")
            failing = await client.send_task("test.fail", {"kind": "fatal"}, max_retries=0)
            with pytest.raises(TaskFailed):
                await failing.get(timeout=30)
            assert (await failing.get(timeout=30, propagate=False))["kind"] == "fatal"
            history = await client.history(task="memory.create", limit=5)
            assert any(t["id"] == task.id for t in history["tasks"])
    asyncio.run(main())


def test_async_revoke_timeout_and_rate_limit():
    async def main():
        async with AsyncClient() as client:
            sleeping = await client.send_task("test.sleep", {"ms": 60000})
            deadline = time.monotonic() + 30
            while await sleeping.status() != "STARTED":
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            with pytest.raises(TaskTimeout):
                await sleeping.get(timeout=0.3)
            await sleeping.revoke()
            with pytest.raises(TaskRevoked):
                await sleeping.get(timeout=30)
            assert await sleeping.ready()
        # Half a request a second: the second and third wait for Retry-After.
        async with AsyncClient(key=SLOW_KEY) as slow:
            started = time.monotonic()
            for _ in range(3):
                await slow.inspect_stats()
            assert time.monotonic() - started >= 2.0
    asyncio.run(main())
