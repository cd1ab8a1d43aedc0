"""The reference guide's snippets, verbatim but for the import line, and
the rest of the client against a real `hippo serve`."""

from __future__ import annotations

import time

import pytest

from hippo_client import Client, HippoError, TaskFailed, TaskRevoked, TaskTimeout
from hippo_client.errors import HippoConnectionError


def test_method_2_direct_task_submission(capsys):
    from hippo_client.tasks import create_memory_task

    # Submit task to Celery
    task = create_memory_task.delay(
        text="Paris is the capital of France",
        user_id="bob",
        memory_type="fact",
        importance=7.0,
        tags=["geography", "france"]
    )

    # Get task ID
    print(f"Task ID: {task.id}")

    # Check status
    print(f"Status: {task.status}")

    # Wait for result (blocking)
    result = task.get(timeout=30)
    print(f"Created memory: {result}")

    assert result["memory"]["text"] == "Paris is the capital of France"
    assert task.successful() and task.ready()
    assert f"Task ID: {task.id}" in capsys.readouterr().out


def test_method_3_batch_operations(capsys):
    from hippo_client.tasks import batch_create_memories_task

    memories = [
        {"text": "Memory 1", "user_id": "alice", "type": "fact"},
        {"text": "Memory 2", "user_id": "alice", "type": "preference"},
        {"text": "Memory 3", "user_id": "alice", "type": "goal"},
    ]

    # Submit batch task (much faster than individual tasks)
    task = batch_create_memories_task.delay(
        memories=memories,
        check_duplicates=True
    )

    # This uses QdrantStore.bulk_upsert() which is 3-5x faster
    result = task.get(timeout=60)
    print(f"Created {len(result)} memories")

    assert capsys.readouterr().out.strip() == "Created 3 memories"


def test_send_task_apply_async_and_history():
    client = Client()
    result = client.send_task("example.fib", {"n": 10})
    assert result.get(timeout=30) == {"value": 55}
    from hippo_client.tasks import Task
    delayed = Task("example.fib").apply_async(kwargs={"n": 11}, countdown=0.2, priority=9)
    assert delayed.get(timeout=30) == {"value": 89}
    page = client.history(task="example.fib", limit=10)
    assert {t["id"] for t in page["tasks"]} >= {result.id, delayed.id}
    logged = client.send_task("test.log", {"lines": 1})
    logged.get(timeout=30)
    lines = [line["message"] for a in client.task_log(logged.id)["attempts"] for line in a["log"]["lines"]]
    assert "line 0" in lines


def test_errors_carry_the_api_code_message_and_field():
    with pytest.raises(HippoError) as refused:
        Client().send_task("no.such.task", {})
    assert (refused.value.status, refused.value.code, refused.value.field) == (400, "invalid_input", "task")
    with pytest.raises(HippoError) as unauthorized:
        Client(key="wrong-key").inspect_stats()
    assert unauthorized.value.status == 401
    with pytest.raises(HippoConnectionError):
        Client(url="http://127.0.0.1:9", key="k").inspect_stats()


def test_rate_limited_calls_are_retried_after_retry_after():
    from conftest import SLOW_KEY

    slow = Client(key=SLOW_KEY)
    started = time.monotonic()
    for _ in range(3):
        assert "queues" in slow.inspect_queues()
    # Half a request a second: the second and third waited for their turn.
    assert time.monotonic() - started >= 1.5


def test_a_failed_task_raises_its_error_unless_asked_not_to():
    failing = Client().send_task("test.fail", {"kind": "fatal"}, max_retries=0)
    with pytest.raises(TaskFailed) as failed:
        failing.get(timeout=30)
    assert failed.value.kind == "fatal"
    assert failing.get(timeout=30, propagate=False)["kind"] == "fatal"
    assert failing.failed() and not failing.successful()
    assert any(letter["task_id"] == failing.id for letter in Client().dead_letters())


def test_revoke_a_running_task_and_time_out_waiting():
    sleeping = Client().send_task("test.sleep", {"ms": 60000})
    deadline = time.monotonic() + 30
    while sleeping.status != "STARTED":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    with pytest.raises(TaskTimeout):
        sleeping.get(timeout=0.3)
    sleeping.revoke()
    with pytest.raises(TaskRevoked):
        sleeping.get(timeout=30)
    assert sleeping.status == "REVOKED" and sleeping.ready() and not sleeping.successful()


def test_inspection_schedules_and_plugins():
    client = Client()
    assert client.inspect_stats()["count"] >= 1
    assert any(q["name"] == "memory_ops" for q in client.inspect_queues()["queues"])
    names = {s["name"] for s in client.schedules()}
    assert "auto-deduplicate-memories" in names
    ran = client.run_schedule("auto-deduplicate-memories")
    assert isinstance(ran, str) and ran
    assert {"memory", "hostile"} <= {p["deployment"] for p in client.plugins()["plugins"]}


def test_the_synchronous_memory_routes():
    client = Client()
    created = client.create_memory(text="I drink green tea every morning", user_id="carol")
    memory_id = created["memory"]["id"]
    found = client.recall(query="what does carol drink?", user_id="carol", k=3)
    assert found["results"][0]["memory"]["id"] == memory_id
    assert client.get_memory(memory_id, "carol")["memory"]["id"] == memory_id
    updated = client.update_memory(memory_id, "carol", tags=["drinks"], importance=7)
    assert updated["memory"]["tags"] == ["drinks"]
    page = client.query_memories(user_id="carol", filters={"tags": ["drinks"]})
    assert [m["id"] for m in page["memories"]] == [memory_id]
    queued = client.queue_memory_task("batch-create", {"memories": [
        {"text": "Carol's sister lives in Porto", "user_id": "carol", "type": "fact",
         "created_at": "2026-03-01T10:00:00Z"}]}, wait=30)
    assert queued["status"] == "SUCCESS", queued
    assert queued["result"]["results"][0]["memory"]["created_at"].startswith("2026-03-01T10:00")
    assert client.task_stats("1h", "memory.batch-create")["tasks"]
    client.delete_memory(memory_id, "carol")
    with pytest.raises(HippoError) as gone:
        client.get_memory(memory_id, "carol")
    assert gone.value.status == 404
