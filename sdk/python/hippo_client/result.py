"""`AsyncResult`: a submitted task, as Celery's `AsyncResult` is."""

from __future__ import annotations

from typing import Any, Callable, Optional

from .client import Client, default_client
from .errors import TaskFailed, TaskRevoked

FINAL = ("SUCCESS", "FAILURE", "REVOKED")


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
        state = self._state()
        if state["status"] == "SUCCESS":
            return self._shape(state.get("result"))
        return state.get("error") or state.get("progress")

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
        if state["status"] == "SUCCESS":
            return self._shape(state.get("result"))
        if not propagate:
            return state.get("error")
        if state["status"] == "REVOKED":
            raise TaskRevoked(f"task {self.id} was revoked")
        raise TaskFailed(self.id, state.get("error"))

    def revoke(self, terminate: bool = True) -> None:
        """Revokes the task: a queued one never runs, a running one is stopped
        (hippo always stops it: `terminate` is Celery's and changes nothing)."""
        self.client.revoke(self.id)
