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

__all__ = ["Context", "TaskError", "plugin", "task"]

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
