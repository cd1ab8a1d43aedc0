"""hippo's Python client: the REST API (`Client`), Celery's calling style
(`hippo_client.tasks`, `AsyncResult`) and the errors it raises."""

from .client import Client, default_client
from .errors import HippoConnectionError, HippoError, TaskFailed, TaskRevoked, TaskTimeout
from .result import AsyncResult
from .tasks import Task

__all__ = ["AsyncResult", "Client", "HippoConnectionError", "HippoError", "Task",
           "TaskFailed", "TaskRevoked", "TaskTimeout", "default_client"]
