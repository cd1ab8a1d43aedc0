"""A submitted task: `AsyncResult`, as Celery's is (synchronous), and
`AwaitableResult`, its asyncio counterpart from `AsyncClient.send_task`."""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional

from .client import FINAL, AsyncClient, Client, default_client
from .errors import TaskFailed, TaskRevoked


def _outcome(task_id: str, state: Dict[str, Any], propagate: bool,
             shape: Callable[[Any], Any]) -> Any:
    """What `get` returns for a finished task's `state`, or raises."""
    if state["status"] == "SUCCESS":
        return shape(state.get("result"))
    if not propagate:
        return state.get("error")
    if state["status"] == "REVOKED":
        raise TaskRevoked(f"task {task_id} was revoked")
    raise TaskFailed(task_id, state.get("error"))


def _info(state: Dict[str, Any], shape: Callable[[Any], Any]) -> Any:
    """Progress while running, the error once failed, the result once done."""
    if state["status"] == "SUCCESS":
        return shape(state.get("result"))
    return state.get("error") or state.get("progress")


class AsyncResult:
    """A task by id: `.id`, `.status`, `.ready()`, `.successful()`,
    `.get(timeout, propagate)`, `.revoke()`, `.info` (progress or error)."""

    def __init__(self, task_id: str, client: Optional[Client] = None,
                 shape: Optional[Callable[[Any], Any]] = None) -> None:
        self.id = task_id
        self._client = client
        # What a task's result becomes for its caller (see `tasks`).
        self._shape = shape or (lambda result: result)

    @property
    def client(self) -> Client:
        return self._client or default_client()

    def __repr__(self) -> str:
        return f"<AsyncResult: {self.id}>"

    def _state(self) -> dict:
        return self.client.status(self.id)

    @property
    def status(self) -> str:
        return self._state()["status"]

    state = status

    @property
    def info(self) -> Any:
        """Progress while running, the error once failed, the result once done."""
        return _info(self._state(), self._shape)

    def ready(self) -> bool:
        return self.status in FINAL

    def successful(self) -> bool:
        return self.status == "SUCCESS"

    def failed(self) -> bool:
        return self.status == "FAILURE"

    def get(self, timeout: Optional[float] = None, propagate: bool = True) -> Any:
        """Waits for the task (at most `timeout` seconds: `TaskTimeout`) and
        returns its result; a failure raises `TaskFailed` (or is returned as
        the error with `propagate=False`), a revocation `TaskRevoked`."""
        state = self.client.wait(self.id, timeout if timeout is not None else 3600.0)
        return _outcome(self.id, state, propagate, self._shape)

    def revoke(self, terminate: bool = True) -> None:
        """Revokes the task: a queued one never runs, a running one is stopped
        (hippo always stops it: `terminate` is Celery's and changes nothing)."""
        self.client.revoke(self.id)


class AwaitableResult:
    """A task submitted through `AsyncClient`: `.id`, and to await,
    `.status()`, `.ready()`, `.info()`, `.get(timeout, propagate)` (as
    `AsyncResult.get`), `.revoke()`."""

    def __init__(self, task_id: str, client: AsyncClient) -> None:
        self.id = task_id
        self.client = client

    def __repr__(self) -> str:
        return f"<AwaitableResult: {self.id}>"

    async def status(self) -> str:
        return (await self.client.status(self.id))["status"]

    async def ready(self) -> bool:
        return await self.status() in FINAL

    async def info(self) -> Any:
        return _info(await self.client.status(self.id), lambda result: result)

    async def get(self, timeout: Optional[float] = None, propagate: bool = True) -> Any:
        state = await self.client.wait(self.id, timeout if timeout is not None else 3600.0)
        return _outcome(self.id, state, propagate, lambda result: result)

    async def revoke(self) -> None:
        await self.client.revoke(self.id)
