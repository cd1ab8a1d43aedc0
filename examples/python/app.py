"""A hippo task plugin written in Python, with the guest SDK
(sdk/python-guest, `hippo_task`): five tasks showing what a plugin does
(output, bad input, retry, progress, logging, deadlines).

Built by scripts/build-guests with componentize-py against the WIT world
`task-basic` (log, progress, deadline: what every plugin is granted):

    componentize-py -d tasks-wit/wit -w task-basic componentize \\
        -p sdk/python-guest -p examples/python app -o python-example.wasm

then deployed like any plugin (drop the .wasm into plugins/) or tried with
`hippo run python-example.wasm pyexample.greet --input '{"name": "Ada"}'`.
"""

from hippo_task import Context, TaskError, plugin, task


@task("pyexample.greet", "Greets `name`, logging it")
def greet(ctx: Context, name: str) -> dict:
    if not isinstance(name, str) or not name.strip():
        raise TaskError.bad_input("field `name`: a non-blank string is required")
    ctx.info(f"greeting {name}")
    return {"greeting": f"Hello, {name}!"}


@task("pyexample.count", "Counts to `n`, reporting progress")
def count(ctx: Context, n: int) -> dict:
    if not isinstance(n, int) or not 0 <= n <= 1_000_000:
        raise TaskError.bad_input("field `n`: an integer from 0 to 1000000 is required")
    for i in range(1, n + 1):
        if i % max(1, n // 10) == 0 or i == n:
            ctx.progress(i, n, f"counted to {i}")
    return {"counted": n, "soft_limit_passed": ctx.soft_limit_passed()}


@task("pyexample.flaky", "Asks to be retried until its attempt reaches `succeed_on`")
def flaky(ctx: Context, succeed_on: int = 2) -> dict:
    if ctx.attempt < succeed_on:
        raise TaskError.retry(f"attempt {ctx.attempt} of {succeed_on}", delay_ms=10)
    return {"attempt": ctx.attempt}


@task("pyexample.noop", "Does nothing: the per-task overhead of a Python plugin")
def noop(ctx: Context) -> None:
    return None


@task("pyexample.spin", "Computes until the hard time limit stops it")
def spin(ctx: Context) -> dict:
    total = 0
    while True:
        total += 1


Plugin = plugin("python-example", "0.1.0")
