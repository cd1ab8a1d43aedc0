"""Write hippo task plugins as plain Python functions.

    from hippo_task import Context, TaskError, plugin, task

    @task("greet.hello", description="Greets someone")
    def hello(ctx: Context, name: str, excited: bool = False) -> dict:
        ctx.info(f"greeting {name}")
        return {"greeting": f"Hello, {name}{'!' if excited else '.'}"}

    Plugin = plugin("greet", "0.1.0")

A task takes the `Context` and the fields of its JSON input as keyword
arguments (a missing or unknown field is refused as bad input, naming it)
and returns anything `json.dumps` takes. Raise `TaskError.retry(..)`,
`TaskError.fatal(..)` or `TaskError.bad_input(..)` to fail; any other
exception fails the task (not retried) with its message.

Build with componentize-py against the WIT world `task-basic` (log,
progress, deadline), with this folder on the path:

    componentize-py -d tasks-wit/wit -w task-basic componentize \\
        -p sdk/python-guest -p my_plugin app -o my-plugin.wasm

The key-value store (`ctx.kv_get`, `kv_set`, `kv_incr`, `kv_delete`), the
embedding model (`ctx.embed`) and the memory store (`ctx.memory_count`,
`memory_search`, `memory_keyword_search`, `memory_get`) need the world
`task-plugin`, whose every interface the component then imports: its
manifest grants them all (log, progress, deadline, kv, health, embeddings,
rerank, memory-store). A failed host call raises `HostError`.

The component runs in hippo's sandbox like any plugin: its limits, and
only the imports its manifest grants.
"""

from __future__ import annotations

import inspect
import json
from typing import Any, Callable, Dict, List, Optional

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import deadline, log, progress, types

# The host services of the world `task-plugin`, absent from `task-basic`.
# Imported here, not where they are used: componentize-py keeps in the
# component only the modules imported while it builds.
try:
    from wit_world.imports import embeddings, kv, memory_store
except ImportError:
    embeddings = kv = memory_store = None

__all__ = ["Context", "HostError", "TaskError", "plugin", "task"]

# Limits a task leaves to its manifest and the host's defaults.
_NO_LIMITS = types.Limits(None, None, None, None, None, None, None)

_tasks: Dict[str, "_Task"] = {}


class TaskError(Exception):
    """How a task fails: `retry` (transient; run again, after `delay_ms`
    if given), `fatal` (never retried) or `bad_input` (the caller's fault)."""

    def __init__(self, error: Any) -> None:
        super().__init__(getattr(error, "value", error))
        self.error = error

    @staticmethod
    def retry(message: str, delay_ms: Optional[int] = None) -> "TaskError":
        return TaskError(types.TaskError_Retry(types.RetryRequest(message, delay_ms)))

    @staticmethod
    def fatal(message: str) -> "TaskError":
        return TaskError(types.TaskError_Fatal(message))

    @staticmethod
    def bad_input(message: str) -> "TaskError":
        return TaskError(types.TaskError_BadInput(message))


class HostError(Exception):
    """A host call that failed: the key-value store (over its quota, say),
    the model, or the memory store (`kind`: forbidden, invalid,
    unavailable; None for the others)."""

    def __init__(self, message: str, kind: Optional[str] = None) -> None:
        super().__init__(message)
        self.kind = kind


def _host_call(call: Callable[[], Any]) -> Any:
    """Runs a host call, raising its error as a HostError."""
    try:
        return call()
    except Err as error:
        value = error.value
        if isinstance(value, str):
            raise HostError(value) from None
        # A memory-store error: a variant whose class names its kind.
        kind = type(value).__name__.rsplit("_", 1)[-1].lower()
        raise HostError(str(getattr(value, "value", value)), kind) from None


def _service(module: Any, interface: str) -> Any:
    """`module`, or a HostError if the component was built without it."""
    if module is None:
        raise HostError(f"this component does not import `{interface}`: build it against "
                        "the world `task-plugin` and grant it in the manifest")
    return module


def _memory_filter(user_id: str) -> Any:
    """The memory store's filter for one user's memories."""
    return _service(memory_store, "memory-store").Filter(user_id, [], [], [], None, None, None, None, None, None,
                               None, None, False)


def _memory_dict(memory: Any) -> Dict[str, Any]:
    """A memory record as JSON-able fields."""
    fields = dict(vars(memory))
    fields["memory_type"] = memory.memory_type.name.lower()
    if memory.visibility is not None:
        fields["visibility"] = memory.visibility.name.lower()
    return fields


class Context:
    """What a running task knows and may do: its id, attempt and queue, its
    deadlines, progress and logging."""

    def __init__(self, ctx: types.Context) -> None:
        self.task_id = ctx.task_id
        self.attempt = ctx.attempt
        self.queue = ctx.queue
        self.soft_deadline_unix_ms = ctx.soft_deadline_unix_ms
        self.hard_deadline_unix_ms = ctx.hard_deadline_unix_ms

    def progress(self, done: int, total: int, message: Optional[str] = None) -> None:
        progress.report(done, total, message)

    def soft_limit_passed(self) -> bool:
        """Past the soft time limit: time to return a partial result."""
        return deadline.soft_limit_passed()

    def hard_time_left_ms(self) -> int:
        return deadline.hard_time_left_ms()

    def debug(self, message: str) -> None:
        log.log(log.Level.DEBUG, message)

    def info(self, message: str) -> None:
        log.log(log.Level.INFO, message)

    def warn(self, message: str) -> None:
        log.log(log.Level.WARN, message)

    def error(self, message: str) -> None:
        log.log(log.Level.ERROR, message)

    # The key-value store (grant `kv`): the plugin's own namespace, within
    # its quota.

    def kv_get(self, key: str) -> Optional[bytes]:
        store = _service(kv, "kv")
        return _host_call(lambda: store.get(key))

    def kv_set(self, key: str, value: Any, ttl_ms: Optional[int] = None) -> None:
        """Stores bytes (a str is stored as UTF-8)."""
        store = _service(kv, "kv")
        data = value.encode() if isinstance(value, str) else bytes(value)
        _host_call(lambda: store.set(key, data, ttl_ms))

    def kv_incr(self, key: str, delta: int = 1) -> int:
        store = _service(kv, "kv")
        return _host_call(lambda: store.incr(key, delta))

    def kv_delete(self, key: str) -> bool:
        store = _service(kv, "kv")
        return _host_call(lambda: store.delete(key))

    # The host's embedding model (grant `embeddings`).

    def embed(self, texts: List[str], query: bool = False) -> List[List[float]]:
        """One vector per text; `query` for search queries (a model may
        prefix them)."""
        model = _service(embeddings, "embeddings")
        kind = model.TextKind.QUERY if query else model.TextKind.DOCUMENT
        return _host_call(lambda: model.embed(list(texts), kind))

    def embedding_dimension(self) -> int:
        return _service(embeddings, "embeddings").dimension()

    # The memory store (grant `memory-store`), one user's memories: the
    # host allows only the user the task acts for (its input's `user_id`).

    def memory_count(self, user_id: str) -> int:
        store = _service(memory_store, "memory-store")
        return _host_call(lambda: store.count(_memory_filter(user_id)))

    def memory_search(self, vector: List[float], user_id: str,
                      limit: int = 5) -> List[Dict[str, Any]]:
        """The user's memories nearest to `vector`, best first, each with
        its `score`."""
        store = _service(memory_store, "memory-store")
        hits = _host_call(lambda: store.search(vector, _memory_filter(user_id), limit))
        return [dict(_memory_dict(hit.memory), score=hit.score) for hit in hits]

    def memory_keyword_search(self, query: str, user_id: str,
                              limit: int = 5) -> List[Dict[str, Any]]:
        """The user's memories that best match `query`'s words (BM25)."""
        store = _service(memory_store, "memory-store")
        hits = _host_call(lambda: store.keyword_search(query, _memory_filter(user_id), limit))
        return [dict(_memory_dict(hit.memory), score=hit.score) for hit in hits]

    def memory_get(self, ids: List[str]) -> List[Dict[str, Any]]:
        store = _service(memory_store, "memory-store")
        return [_memory_dict(stored.memory)
                for stored in _host_call(lambda: store.get(list(ids)))]


class _Task:
    def __init__(self, name: str, function: Callable[..., Any], description: str,
                 queue: str) -> None:
        self.name = name
        self.function = function
        self.description = description
        self.queue = queue
        parameters = list(inspect.signature(function).parameters.values())[1:]
        self.fields = {p.name: p for p in parameters}
        self.required = [p.name for p in parameters if p.default is inspect.Parameter.empty]

    def info(self) -> types.TaskInfo:
        return types.TaskInfo(self.name, self.description, self.queue, _NO_LIMITS)

    def call(self, ctx: Context, input: bytes) -> bytes:
        try:
            data = json.loads(input) if input else {}
        except ValueError as error:
            raise TaskError.bad_input(f"input is not JSON: {error}")
        if not isinstance(data, dict):
            raise TaskError.bad_input("input must be a JSON object")
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise TaskError.bad_input(f"field `{unknown[0]}`: not an input of {self.name}")
        missing = [name for name in self.required if name not in data]
        if missing:
            raise TaskError.bad_input(f"field `{missing[0]}`: missing")
        output = self.function(ctx, **data)
        try:
            return json.dumps(output).encode()
        except (TypeError, ValueError) as error:
            raise TaskError.fatal(f"the output is not JSON: {error}")


def task(name: str, description: str = "", queue: str = "default") -> Callable:
    """Registers the decorated function as the task `name` of this plugin."""
    def register(function: Callable[..., Any]) -> Callable[..., Any]:
        if name in _tasks:
            raise ValueError(f"task {name} is registered twice")
        _tasks[name] = _Task(name, function, description or (function.__doc__ or "").strip(),
                             queue)
        return function
    return register


def plugin(name: str, version: str) -> type:
    """The class componentize-py exports as `Plugin`: it describes the
    registered tasks and runs them."""

    class Plugin(exports.Plugin):
        def describe(self) -> types.PluginInfo:
            infos: List[types.TaskInfo] = [t.info() for t in _tasks.values()]
            return types.PluginInfo(name, version, infos)

        def run(self, ctx: types.Context, task_name: str, input: bytes) -> bytes:
            registered = _tasks.get(task_name)
            if registered is None:
                raise Err(types.TaskError_Fatal(f"unknown task {task_name}"))
            try:
                return registered.call(Context(ctx), input)
            except TaskError as failure:
                raise Err(failure.error)
            except Exception as error:  # the task's own bug: fatal, with its message
                raise Err(types.TaskError_Fatal(f"{type(error).__name__}: {error}"))

    return Plugin
