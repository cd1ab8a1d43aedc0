"""What the client raises."""

from __future__ import annotations

from typing import Any, Optional


class HippoError(Exception):
    """An error answer of the API: its HTTP status and its `error` body."""

    def __init__(self, status: int, code: str, message: str,
                 field: Optional[str] = None) -> None:
        super().__init__(f"{status} {code}: {message}" + (f" (field {field})" if field else ""))
        self.status = status
        self.code = code
        self.message = message
        self.field = field

    @classmethod
    def from_response(cls, response: Any) -> "HippoError":
        try:
            error = response.json()["error"]
        except Exception:  # not the API's JSON (a proxy's page, say)
            return cls(response.status_code, "http_error", response.text[:200])
        return cls(response.status_code, error.get("code", "error"),
                   error.get("message", ""), error.get("field"))


class HippoConnectionError(Exception):
    """The API could not be reached."""


class TaskTimeout(TimeoutError):
    """A task did not finish in time, or a request timed out."""


class TaskFailed(Exception):
    """A task ended in FAILURE: its error (`kind`, `message`) as the API gave it."""

    def __init__(self, task_id: str, error: Any) -> None:
        kind = error.get("kind", "failure") if isinstance(error, dict) else "failure"
        message = error.get("message", error) if isinstance(error, dict) else error
        super().__init__(f"task {task_id} failed: {kind}: {message}")
        self.task_id = task_id
        self.kind = kind
        self.error = error


class TaskRevoked(Exception):
    """A task was revoked before it finished."""
