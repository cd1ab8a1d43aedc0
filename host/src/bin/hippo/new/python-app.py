"""The `%NAME%` hippo plugin, in Python (hippo_task, the guest SDK).

- `%NAME%.hello` {"name": "Ada"} -> {"greeting": "Hello, Ada!"}

Build: ./build.sh (componentize-py); try it: ./test.sh. See README.md.
"""

from hippo_task import Context, TaskError, plugin, task


@task("%NAME%.hello", "Greets `name`")
def hello(ctx: Context, name: str) -> dict:
    if not isinstance(name, str) or not name.strip():
        raise TaskError.bad_input("field `name`: a non-blank name is required")
    ctx.info(f"greeted {name}")
    return {"greeting": f"Hello, {name}!"}


Plugin = plugin("%NAME%", "0.1.0")
