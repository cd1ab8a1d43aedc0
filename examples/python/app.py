"""A hippo task plugin written in Python: four tasks showing what a plugin
does (output, bad input, retry, progress, logging, deadlines).

Built by scripts/build-guests with componentize-py against the WIT world
`task-basic` (log, progress, deadline: what every plugin is granted):

    componentize-py -d tasks-wit/wit -w task-basic componentize app -o python-example.wasm

then deployed like any plugin (drop the .wasm into plugins/) or tried with
`hippo run python-example.wasm pyexample.greet --input '{"name": "Ada"}'`.
It runs in the same sandbox as a Rust plugin: the same limits, and only the
imports its manifest grants.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import deadline, log, progress, types

# Limits a task leaves to the manifest and the host's defaults.
DEFAULT_LIMITS = types.Limits(None, None, None, None, None, None, None)


def task(name: str, description: str) -> types.TaskInfo:
    return types.TaskInfo(name, description, "default", DEFAULT_LIMITS)


def bad_input(message: str) -> Err:
    return Err(types.TaskError_BadInput(message))


class Plugin(exports.Plugin):
    def describe(self) -> types.PluginInfo:
        return types.PluginInfo("python-example", "0.1.0", [
            task("pyexample.greet", "Greets `name`, logging it"),
            task("pyexample.count", "Counts to `n`, reporting progress"),
            task("pyexample.flaky", "Asks to be retried until its attempt reaches `succeed_on`"),
            task("pyexample.spin", "Computes until the hard time limit stops it"),
        ])

    def run(self, ctx: types.Context, task_name: str, input: bytes) -> bytes:
        try:
            data = json.loads(input)
        except ValueError as error:
            raise bad_input(f"input is not JSON: {error}")
        if not isinstance(data, dict):
            raise bad_input("input must be a JSON object")
        if task_name == "pyexample.greet":
            name = data.get("name")
            if not isinstance(name, str) or not name.strip():
                raise bad_input("field `name`: a non-blank string is required")
            log.log(log.Level.INFO, f"greeting {name}")
            return json.dumps({"greeting": f"Hello, {name}!"}).encode()
        if task_name == "pyexample.count":
            n = data.get("n")
            if not isinstance(n, int) or not 0 <= n <= 1_000_000:
                raise bad_input("field `n`: an integer from 0 to 1000000 is required")
            for i in range(1, n + 1):
                if i % max(1, n // 10) == 0 or i == n:
                    progress.report(i, n, f"counted to {i}")
            return json.dumps({"counted": n, "soft_limit_passed": deadline.soft_limit_passed()}).encode()
        if task_name == "pyexample.flaky":
            succeed_on = data.get("succeed_on", 2)
            if ctx.attempt < succeed_on:
                raise Err(types.TaskError_Retry(types.RetryRequest(
                    f"attempt {ctx.attempt} of {succeed_on}", 10)))
            return json.dumps({"attempt": ctx.attempt}).encode()
        if task_name == "pyexample.spin":
            total = 0
            while True:
                total += 1
        raise Err(types.TaskError_Fatal(f"unknown task {task_name}"))
