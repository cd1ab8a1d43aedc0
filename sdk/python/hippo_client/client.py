"""The client of hippo's REST API (synchronous, over httpx)."""

from __future__ import annotations

import os
import time
from typing import Any, Dict, List, Optional

import httpx

from .errors import HippoConnectionError, HippoError, TaskTimeout

DEFAULT_URL = "http://127.0.0.1:8000"
# Answers 429 are retried this many times, after the Retry-After they give.
RATE_LIMIT_RETRIES = 5


class Client:
    """hippo's REST API. `url` and `key` default to `HIPPO_API_URL` and
    `HIPPO_API_KEY`."""

    def __init__(self, url: Optional[str] = None, key: Optional[str] = None,
                 timeout: float = 90.0) -> None:
        self.url = (url or os.environ.get("HIPPO_API_URL") or DEFAULT_URL).rstrip("/")
        key = key if key is not None else os.environ.get("HIPPO_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Calls the API; the answer's JSON, or raises `HippoError`."""
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TimeoutException as error:
                raise TaskTimeout(f"{method} {path}: {error}") from error
            except httpx.TransportError as error:
                raise HippoConnectionError(f"{method} {path}: {error}") from error
            if response.status_code == 429 and attempt < RATE_LIMIT_RETRIES:
                time.sleep(float(response.headers.get("Retry-After", "1")))
                continue
            break
        if response.status_code >= 400:
            raise HippoError.from_response(response)
        if not response.content:
            return None
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.text

    # -- tasks ---------------------------------------------------------------

    def submit(self, task: str, input: Any = None, *, queue: Optional[str] = None,
               priority: Optional[int] = None, countdown: Optional[float] = None,
               eta_ms: Optional[int] = None, expires: Optional[float] = None,
               max_retries: Optional[int] = None,
               idempotency_key: Optional[str] = None) -> str:
        """Submits `task` with `input`; its id."""
        body: Dict[str, Any] = {"task": task, "input": input}
        for name, value in [("queue", queue), ("priority", priority), ("countdown", countdown),
                            ("eta_ms", eta_ms), ("expires", expires),
                            ("max_retries", max_retries), ("idempotency_key", idempotency_key)]:
            if value is not None:
                body[name] = value
        return self.request("POST", "/api/v1/tasks/submit", json=body)["task_id"]

    def send_task(self, name: str, kwargs: Optional[Dict[str, Any]] = None,
                  **options: Any) -> "AsyncResult":
        """Celery's `send_task`: submits a plugin's task by name."""
        from .result import AsyncResult
        return AsyncResult(self.submit(name, kwargs or {}, **options), client=self)

    def status(self, task_id: str) -> Dict[str, Any]:
        return self.request("GET", f"/api/v1/tasks/status/{task_id}")

    def wait(self, task_id: str, timeout: float) -> Dict[str, Any]:
        """The task's status once it finished, or `TaskTimeout`."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(task_id)
            if status["status"] in ("SUCCESS", "FAILURE", "REVOKED"):
                return status
            left = deadline - time.monotonic()
            if left <= 0:
                raise TaskTimeout(f"task {task_id} did not finish within {timeout} s")
            time.sleep(min(0.05, left))

    def revoke(self, task_id: str) -> Dict[str, Any]:
        return self.request("POST", f"/api/v1/tasks/cancel/{task_id}")

    # -- inspection, dead letters, schedules, plugins, history ----------------

    def inspect_stats(self) -> Dict[str, Any]:
        return self.request("GET", "/api/v1/tasks/inspect/stats")

    def inspect_queues(self) -> Dict[str, Any]:
        return self.request("GET", "/api/v1/tasks/inspect/queues")

    def inspect_active(self) -> Dict[str, Any]:
        return self.request("GET", "/api/v1/tasks/inspect/active")

    def inspect_scheduled(self) -> Dict[str, Any]:
        return self.request("GET", "/api/v1/tasks/inspect/scheduled")

    def dead_letters(self) -> List[Dict[str, Any]]:
        return self.request("GET", "/api/v1/tasks/deadletters")["dead_letters"]

    def replay(self, task_id: str) -> str:
        return self.request("POST", f"/api/v1/tasks/deadletters/{task_id}/replay")["task_id"]

    def schedules(self) -> List[Dict[str, Any]]:
        return self.request("GET", "/api/v1/tasks/scheduled")["schedules"]

    def run_schedule(self, name: str) -> str:
        return self.request("POST", f"/api/v1/tasks/scheduled/{name}/run")["task_id"]

    def plugins(self) -> Dict[str, Any]:
        return self.request("GET", "/api/v1/plugins")

    def deploy(self, name: str, wasm: bytes) -> Dict[str, Any]:
        return self.request("PUT", f"/api/v1/plugins/{name}", content=wasm,
                            headers={"Content-Type": "application/wasm"})

    def undeploy(self, name: str) -> Dict[str, Any]:
        return self.request("DELETE", f"/api/v1/plugins/{name}")

    def history(self, **filters: Any) -> Dict[str, Any]:
        """A page of finished tasks, newest first (`state`, `task`, `queue`,
        `worker`, `since`, `until`, `q`, `limit`, `cursor`)."""
        params = {k: v for k, v in filters.items() if v is not None}
        return self.request("GET", "/api/v1/tasks", params=params)

    def task_log(self, task_id: str) -> Dict[str, Any]:
        return self.request("GET", f"/api/v1/tasks/{task_id}/log")

    # -- the synchronous memory routes --------------------------------------

    def create_memory(self, **memory: Any) -> Dict[str, Any]:
        return self.request("POST", "/api/v1/memories", json=memory)

    def recall(self, **query: Any) -> Dict[str, Any]:
        return self.request("POST", "/api/v1/memories/recall", json=query)

    def get_memory(self, memory_id: str, user_id: str) -> Dict[str, Any]:
        return self.request("GET", f"/api/v1/memories/{memory_id}", params={"user_id": user_id})

    def delete_memory(self, memory_id: str, user_id: str) -> Dict[str, Any]:
        return self.request("DELETE", f"/api/v1/memories/{memory_id}",
                            params={"user_id": user_id})


_default: Optional[Client] = None


def default_client() -> Client:
    """The client the task objects use: from `HIPPO_API_URL` / `HIPPO_API_KEY`."""
    global _default
    if _default is None:
        _default = Client()
    return _default
