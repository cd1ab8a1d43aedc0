"""hippo's Python client: the REST API (`Client`, and `AsyncClient` for
asyncio), Celery's calling style (`hippo_client.tasks`, `AsyncResult`) and
the errors it raises."""

from .client import AsyncClient, Client, default_client
from .errors import HippoConnectionError, HippoError, TaskFailed, TaskRevoked, TaskTimeout
from .result import AsyncResult, AwaitableResult
from .tasks import Task

__all__ = ["AsyncClient", "AsyncResult", "AwaitableResult", "Client", "HippoConnectionError",
           "HippoError", "Task", "TaskFailed", "TaskRevoked", "TaskTimeout", "default_client"]
