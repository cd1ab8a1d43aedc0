"""The clients of hippo's REST API, over httpx: `Client` (synchronous) and
`AsyncClient` (asyncio). Both have every route, written once in `Routes`:
each route builds its request and hands it to the transport's `_call`,
which `Client` performs at once and `AsyncClient` returns as a coroutine
to await."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any, Callable, Dict, Optional

import httpx

from .errors import HippoConnectionError, HippoError, TaskTimeout

DEFAULT_URL = "http://127.0.0.1:8000"
# Answers 429 are retried this many times, after the Retry-After they give.
RATE_LIMIT_RETRIES = 5
# A task's final states.
FINAL = ("SUCCESS", "FAILURE", "REVOKED")
# How often `wait` asks for a task's state.
POLL_SECONDS = 0.05


def _settings(url: Optional[str], key: Optional[str]) -> tuple:
    """The base URL and headers: the arguments, else `HIPPO_API_URL` and
    `HIPPO_API_KEY`."""
    url = (url or os.environ.get("HIPPO_API_URL") or DEFAULT_URL).rstrip("/")
    key = key if key is not None else os.environ.get("HIPPO_API_KEY")
    return url, ({"Authorization": f"Bearer {key}"} if key else {})


def _send_error(method: str, path: str, error: Exception) -> Exception:
    """The client's exception for a request that got no answer."""
    if isinstance(error, httpx.TimeoutException):
        return TaskTimeout(f"{method} {path}: {error}")
    return HippoConnectionError(f"{method} {path}: {error}")


def _retry_after(response: httpx.Response, attempt: int) -> Optional[float]:
    """Seconds to wait before asking again, when `response` is a 429 that
    may still be retried."""
    if response.status_code == 429 and attempt < RATE_LIMIT_RETRIES:
        return float(response.headers.get("Retry-After", "1"))
    return None


def _decode(response: httpx.Response) -> Any:
    """The answer's JSON (or text), or raises `HippoError`."""
    if response.status_code >= 400:
        raise HippoError.from_response(response)
    if not response.content:
        return None
    if response.headers.get("content-type", "").startswith("application/json"):
        return response.json()
    return response.text


def _submission(task: str, input: Any, options: Dict[str, Any]) -> Dict[str, Any]:
    body: Dict[str, Any] = {"task": task, "input": input}
    body.update({name: value for name, value in options.items() if value is not None})
    return body


def _given(**values: Any) -> Dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


def _field(name: str) -> Callable[[Any], Any]:
    return lambda answer: answer[name]


class Routes:
    """Every route of the API. A route returns what `_call` returns: the
    answer with `Client`, an awaitable of it with `AsyncClient`."""

    def _call(self, method: str, path: str, pick: Optional[Callable[[Any], Any]] = None,
              **request: Any) -> Any:
        raise NotImplementedError

    # -- tasks ---------------------------------------------------------------

    def submit(self, task: str, input: Any = None, *, queue: Optional[str] = None,
               priority: Optional[int] = None, countdown: Optional[float] = None,
               eta_ms: Optional[int] = None, expires: Optional[float] = None,
               max_retries: Optional[int] = None,
               idempotency_key: Optional[str] = None) -> Any:
        """Submits `task` with `input`; its id."""
        body = _submission(task, input, dict(
            queue=queue, priority=priority, countdown=countdown, eta_ms=eta_ms,
            expires=expires, max_retries=max_retries, idempotency_key=idempotency_key))
        return self._call("POST", "/api/v1/tasks/submit", _field("task_id"), json=body)

    def status(self, task_id: str) -> Any:
        return self._call("GET", f"/api/v1/tasks/status/{task_id}")

    def revoke(self, task_id: str) -> Any:
        return self._call("POST", f"/api/v1/tasks/cancel/{task_id}")

    # -- inspection, queues, dead letters, schedules, plugins, history ---------

    def inspect_stats(self) -> Any:
        return self._call("GET", "/api/v1/tasks/inspect/stats")

    def inspect_queues(self) -> Any:
        return self._call("GET", "/api/v1/tasks/inspect/queues")

    def inspect_active(self) -> Any:
        return self._call("GET", "/api/v1/tasks/inspect/active")

    def inspect_scheduled(self) -> Any:
        return self._call("GET", "/api/v1/tasks/inspect/scheduled")

    def purge_queue(self, queue: str) -> Any:
        return self._call("DELETE", f"/api/v1/tasks/queues/{queue}", params={"confirm": "true"})

    def dead_letters(self) -> Any:
        return self._call("GET", "/api/v1/tasks/deadletters", _field("dead_letters"))

    def replay(self, task_id: str) -> Any:
        return self._call("POST", f"/api/v1/tasks/deadletters/{task_id}/replay",
                          _field("task_id"))

    def schedules(self) -> Any:
        return self._call("GET", "/api/v1/tasks/scheduled", _field("schedules"))

    def run_schedule(self, name: str) -> Any:
        return self._call("POST", f"/api/v1/tasks/scheduled/{name}/run", _field("task_id"))

    def plugins(self) -> Any:
        return self._call("GET", "/api/v1/plugins")

    def deploy(self, name: str, wasm: bytes) -> Any:
        return self._call("PUT", f"/api/v1/plugins/{name}", content=wasm,
                          headers={"Content-Type": "application/wasm"})

    def deploy_manifest(self, name: str, manifest: str) -> Any:
        return self._call("PUT", f"/api/v1/plugins/{name}/manifest", content=manifest.encode(),
                          headers={"Content-Type": "application/toml"})

    def undeploy(self, name: str) -> Any:
        return self._call("DELETE", f"/api/v1/plugins/{name}")

    def history(self, **filters: Any) -> Any:
        """A page of finished tasks, newest first (`state`, `task`, `queue`,
        `worker`, `since`, `until`, `q`, `limit`, `cursor`)."""
        return self._call("GET", "/api/v1/tasks", params=_given(**filters))

    def task_log(self, task_id: str) -> Any:
        return self._call("GET", f"/api/v1/tasks/{task_id}/log")

    def task_stats(self, window: str = "1h", task: Optional[str] = None) -> Any:
        """Counts and runtimes per task name over `window` (1m, 1h, 24h)."""
        return self._call("GET", "/api/v1/stats/tasks", params=_given(window=window, task=task))

    # -- the synchronous memory routes (answered inline) -----------------------

    def create_memory(self, **memory: Any) -> Any:
        """`memory.create` (`text`, `user_id`, ...): `{memory, action, ...}`."""
        return self._call("POST", "/api/v1/memories", json=memory)

    def recall(self, **query: Any) -> Any:
        """`memory.recall` (`query`, `user_id`, `k`, `mode`, `filters`, ...)."""
        return self._call("POST", "/api/v1/memories/recall", json=query)

    def query_memories(self, **query: Any) -> Any:
        """A page of a user's memories (`user_id`, `filters`, `limit`, `cursor`)."""
        return self._call("POST", "/api/v1/memories/query", json=query)

    def get_memory(self, memory_id: str, user_id: str) -> Any:
        return self._call("GET", f"/api/v1/memories/{memory_id}", params={"user_id": user_id})

    def update_memory(self, memory_id: str, user_id: str, **updates: Any) -> Any:
        """Changes `text`, `importance`, `tags`, `metadata`, `expires_at` or
        `memory_type` of a memory."""
        return self._call("PATCH", f"/api/v1/memories/{memory_id}",
                          params={"user_id": user_id}, json=updates)

    def delete_memory(self, memory_id: str, user_id: str) -> Any:
        return self._call("DELETE", f"/api/v1/memories/{memory_id}",
                          params={"user_id": user_id})

    # -- the queued memory routes (a task each; `wait` seconds for its end) ----

    def queue_memory_task(self, action: str, body: Dict[str, Any],
                          wait: Optional[float] = None) -> Any:
        """Queues `memory.<action>` (create, batch-create, recall, update,
        delete) with `body`: its status (finished when it ended within
        `wait` seconds, else queued with its `task_id`)."""
        params = {"wait": wait} if wait is not None else None
        return self._call("POST", f"/api/v1/tasks/memory/{action}", params=params, json=body)


class Client(Routes):
    """hippo's REST API, synchronous. `url` and `key` default to
    `HIPPO_API_URL` and `HIPPO_API_KEY`."""

    def __init__(self, url: Optional[str] = None, key: Optional[str] = None,
                 timeout: float = 90.0) -> None:
        self.url, headers = _settings(url, key)
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def request(self, method: str, path: str, **request: Any) -> Any:
        """Calls the API; the answer's JSON, or raises `HippoError`."""
        return self._call(method, path, **request)

    def _call(self, method: str, path: str, pick: Optional[Callable[[Any], Any]] = None,
              **request: Any) -> Any:
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            try:
                response = self._http.request(method, path, **request)
            except httpx.TransportError as error:
                raise _send_error(method, path, error) from error
            pause = _retry_after(response, attempt)
            if pause is None:
                break
            time.sleep(pause)
        answer = _decode(response)
        return pick(answer) if pick else answer

    def wait(self, task_id: str, timeout: float) -> Dict[str, Any]:
        """The task's status once it finished, or `TaskTimeout`."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(task_id)
            if status["status"] in FINAL:
                return status
            left = deadline - time.monotonic()
            if left <= 0:
                raise TaskTimeout(f"task {task_id} did not finish within {timeout} s")
            time.sleep(min(POLL_SECONDS, left))

    def send_task(self, name: str, kwargs: Optional[Dict[str, Any]] = None,
                  **options: Any) -> "AsyncResult":
        """Celery's `send_task`: submits a plugin's task by name."""
        from .result import AsyncResult
        return AsyncResult(self.submit(name, kwargs or {}, **options), client=self)


class AsyncClient(Routes):
    """hippo's REST API for asyncio: every route of `Client`, awaited.

        async with AsyncClient() as client:
            task = await client.send_task("memory.create", {"text": ..., "user_id": ...})
            memory = await task.get(timeout=30)
    """

    def __init__(self, url: Optional[str] = None, key: Optional[str] = None,
                 timeout: float = 90.0) -> None:
        self.url, headers = _settings(url, key)
        self._http = httpx.AsyncClient(base_url=self.url, headers=headers, timeout=timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *_: Any) -> None:
        await self.aclose()

    async def request(self, method: str, path: str, **request: Any) -> Any:
        """Calls the API; the answer's JSON, or raises `HippoError`."""
        return await self._call(method, path, **request)

    async def _call(self, method: str, path: str, pick: Optional[Callable[[Any], Any]] = None,
                    **request: Any) -> Any:
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            try:
                response = await self._http.request(method, path, **request)
            except httpx.TransportError as error:
                raise _send_error(method, path, error) from error
            pause = _retry_after(response, attempt)
            if pause is None:
                break
            await asyncio.sleep(pause)
        answer = _decode(response)
        return pick(answer) if pick else answer

    async def wait(self, task_id: str, timeout: float) -> Dict[str, Any]:
        """The task's status once it finished, or `TaskTimeout`."""
        deadline = time.monotonic() + timeout
        while True:
            status = await self.status(task_id)
            if status["status"] in FINAL:
                return status
            left = deadline - time.monotonic()
            if left <= 0:
                raise TaskTimeout(f"task {task_id} did not finish within {timeout} s")
            await asyncio.sleep(min(POLL_SECONDS, left))

    async def send_task(self, name: str, kwargs: Optional[Dict[str, Any]] = None,
                        **options: Any) -> "AwaitableResult":
        """Submits a plugin's task by name; a handle to await its end."""
        from .result import AwaitableResult
        return AwaitableResult(await self.submit(name, kwargs or {}, **options), client=self)


_default: Optional[Client] = None


def default_client() -> Client:
    """The client the task objects use: from `HIPPO_API_URL` / `HIPPO_API_KEY`."""
    global _default
    if _default is None:
        _default = Client()
    return _default

