"""A hippo plugin in Python that uses the host's services through the guest
SDK (sdk/python-guest, `hippo_task`): the key-value store, the embedding
model and the memory store. Built by scripts/build-guests against the WIT
world `task-plugin`, whose every interface componentize-py imports, so its
manifest (python-memory.toml) grants them all:

    componentize-py -d tasks-wit/wit -w task-plugin componentize \\
        -p sdk/python-guest -p examples/python-memory app -o python-memory.wasm
"""

from hippo_task import Context, HostError, TaskError, plugin, task


@task("pymemory.visits", "Counts the calls for `user_id` in the key-value store")
def visits(ctx: Context, user_id: str) -> dict:
    return {"visits": ctx.kv_incr(f"visits:{user_id}")}


@task("pymemory.similarity", "Cosine similarity of texts `a` and `b` (the host's model)")
def similarity(ctx: Context, a: str, b: str) -> dict:
    first, second = ctx.embed([a, b])
    dot = sum(x * y for x, y in zip(first, second))
    norms = (sum(x * x for x in first) * sum(y * y for y in second)) ** 0.5
    return {"similarity": dot / norms, "dimension": ctx.embedding_dimension()}


@task("pymemory.recall", "The memories of `user_id` nearest to `query`")
def recall(ctx: Context, user_id: str, query: str, k: int = 3, of_user: str = "") -> dict:
    # `of_user` asks for another user's memories: the host refuses that.
    try:
        count = ctx.memory_count(of_user or user_id)
        vector = ctx.embed([query], query=True)[0]
        hits = ctx.memory_search(vector, of_user or user_id, k)
    except HostError as error:
        raise TaskError.fatal(f"memory store ({error.kind}): {error}")
    return {"count": count, "texts": [hit["text"] for hit in hits]}


Plugin = plugin("python-memory", "0.1.0")
