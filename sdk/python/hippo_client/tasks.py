"""The reference stack's tasks by their names, in Celery's calling style:

    from hippo_client.tasks import create_memory_task
    task = create_memory_task.delay(text=..., user_id=...)
    task.get(timeout=30)

Each is a `Task` naming a hippo task; `.delay(**kwargs)` and
`.apply_async(kwargs=..., countdown=..., eta=..., expires=..., queue=...,
priority=...)` submit it with the keyword arguments as its JSON input.
"""

from __future__ import annotations

import datetime
from typing import Any, Callable, Dict, Optional

from .client import Client, default_client
from .result import AsyncResult


class Task:
    """A hippo task called as a Celery task."""

    def __init__(self, name: str, shape: Optional[Callable[[Any], Any]] = None,
                 prepare: Optional[Callable[[Dict[str, Any]], Dict[str, Any]]] = None,
                 client: Optional[Client] = None) -> None:
        self.name = name
        self._shape = shape
        self._prepare = prepare or (lambda kwargs: kwargs)
        self._client = client

    def __repr__(self) -> str:
        return f"<Task {self.name}>"

    def delay(self, *args: Any, **kwargs: Any) -> AsyncResult:
        if args:
            raise TypeError(f"{self.name} takes keyword arguments only (one JSON input)")
        return self.apply_async(kwargs=kwargs)

    def apply_async(self, args: Any = None, kwargs: Optional[Dict[str, Any]] = None, *,
                    countdown: Optional[float] = None,
                    eta: Optional[datetime.datetime] = None,
                    expires: Any = None, queue: Optional[str] = None,
                    priority: Optional[int] = None,
                    max_retries: Optional[int] = None) -> AsyncResult:
        if args:
            raise TypeError(f"{self.name} takes keyword arguments only (one JSON input)")
        client = self._client or default_client()
        if isinstance(expires, datetime.datetime):
            expires = max(0.001, (expires - _now(expires)).total_seconds())
        task_id = client.submit(
            self.name, self._prepare(dict(kwargs or {})), queue=queue, priority=priority, countdown=countdown,
            eta_ms=int(eta.timestamp() * 1000) if eta is not None else None,
            expires=expires, max_retries=max_retries)
        return AsyncResult(task_id, client=client, shape=self._shape)


def _now(like: datetime.datetime) -> datetime.datetime:
    return datetime.datetime.now(like.tzinfo) if like.tzinfo else datetime.datetime.now()


def _created(result: Any) -> Any:
    """A batch's result as the reference's callers read it: the list of the
    memories it created (the whole answer stays in `AsyncResult.info`'s
    place: `client.status(id)["result"]`)."""
    if isinstance(result, dict) and isinstance(result.get("results"), list):
        return result["results"]
    return result


def _one_user(kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """A batch acts for one user, named at its top (the host keeps users
    apart by it); the reference's callers name the user in each item, so it
    is lifted from them when they agree (else the server says why not)."""
    users = {m.get("user_id") for m in kwargs.get("memories") or [] if isinstance(m, dict)}
    if "user_id" not in kwargs and len(users) == 1 and None not in users:
        kwargs["user_id"] = users.pop()
    return kwargs


create_memory_task = Task("memory.create")
batch_create_memories_task = Task("memory.batch-create", shape=_created, prepare=_one_user)
recall_memories_task = Task("memory.recall")
update_memory_task = Task("memory.update")
delete_memory_task = Task("memory.delete")
deduplicate_all_memories = Task("maintenance.dedup")
consolidate_memories_task = Task("maintenance.consolidate")
expire_memories_task = Task("maintenance.expire")
decay_memories_task = Task("maintenance.decay")
snapshot_memories_task = Task("maintenance.snapshot")
health_check_task = Task("maintenance.health")
