//! `bench memory`: the memory engine end to end, as `hippo serve` runs it
//! (embedded broker, a worker, the memory plugin on the real models and the
//! embedded Qdrant store, all in this process):
//!
//! 1. Embedding throughput at batch 32, ours against Python onnxruntime on
//!    the same graph, threads and texts (the `embed` benchmark's code, on
//!    the sentences step 2 stores: the rate batch creation is held to).
//! 2. `memory.batch-create` of the queried user's memories, 1,000 per task,
//!    submitted through the broker and waited for: every batch but the last
//!    without duplicate checks (the bulk load), the last with them (the
//!    default, against the memories already stored).
//! 3. The other users' memories (to `--total`), written straight into the
//!    store with the stored memories' real vectors, each slightly moved so
//!    that none repeats; then the store's index is built.
//! 4. Sequential `memory.recall` round trips through the broker (hybrid, no
//!    reranker, k = 5), p50 and p99.
//! 5. The process's resident memory with the models loaded, before and
//!    after the data.

use crate::api::load::broker_round_trip;
use crate::api::memory::{Memory, memory_parts, memory_text};
use crate::api::stack::{Backend, Stack};
use crate::memory::embed::{dirs_home, embed_throughput, python_throughput};
use crate::report::Report;
use crate::stats::Summary;
use anyhow::{Context as _, bail, ensure};
use hippo::memory::MemoryServices;
use hippo::models::{ModelsConfig, default_models_dir};
use hippo::store::{Stored, VectorStore};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The user every recall is for.
const USER: &str = "bench-user";
/// Memories per `memory.batch-create` task (the 1,000).
const BATCH: usize = 1_000;
/// Users the other memories are spread over.
const OTHER_USERS: usize = 900;

#[derive(Debug)]
struct Options {
    user_memories: usize,
    total: usize,
    queries: usize,
    threads: usize,
    embed_seconds: f64,
    plugin: PathBuf,
}

fn options(args: &[String]) -> anyhow::Result<Options> {
    let mut options = Options {
        user_memories: 10_000,
        total: 100_000,
        queries: 300,
        threads: std::thread::available_parallelism().map_or(1, usize::from),
        embed_seconds: 3.0,
        plugin: PathBuf::from("plugins/memory.wasm"),
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--user-memories" => options.user_memories = value()?.parse()?,
            "--total" => options.total = value()?.parse()?,
            "--queries" => options.queries = value()?.parse()?,
            "--threads" => options.threads = value()?.parse()?,
            "--embed-seconds" => options.embed_seconds = value()?.parse()?,
            "--memory-plugin" => options.plugin = value()?.into(),
            other => bail!("unknown option {other}"),
        }
    }
    ensure!(
        options.user_memories >= 2 * BATCH && options.user_memories.is_multiple_of(BATCH),
        "--user-memories must be a multiple of {BATCH}, at least {}",
        2 * BATCH
    );
    ensure!(
        options.total >= options.user_memories,
        "--total must be at least --user-memories"
    );
    Ok(options)
}

/// This process's resident set, in MiB (Linux: `/proc/self/status`).
fn rss_mib() -> anyhow::Result<f64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .context("no VmRSS in /proc/self/status")?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kib / 1024.0)
}

/// One batch of the user's memories, `first..first + BATCH`; returns the
/// ids stored and how long the task took.
async fn batch_create(
    stack: &Stack,
    first: usize,
    check_duplicates: bool,
) -> anyhow::Result<(Vec<String>, Duration)> {
    let memories: Vec<Value> = (first..first + BATCH)
        .map(|n| json!({"text": memory_text(n), "user_id": USER}))
        .collect();
    let input =
        json!({"user_id": USER, "memories": memories, "check_duplicates": check_duplicates});
    let started = Instant::now();
    let message = stack.message("memory.batch-create", input)?;
    let output = broker_round_trip(&stack.broker, message).await?;
    let took = started.elapsed();
    let ids = output["results"]
        .as_array()
        .context("batch-create returned no results")?
        .iter()
        .filter_map(|r| r["memory"]["id"].as_str().map(String::from))
        .collect();
    Ok((ids, took))
}

/// One `memory.recall` of the user's memories (hybrid, k 5), waited for.
async fn recall(stack: &Stack, text: &str) -> anyhow::Result<Value> {
    let input = json!({"query": text, "user_id": USER, "k": 5});
    broker_round_trip(&stack.broker, stack.message("memory.recall", input)?).await
}

/// A deterministic small move of `vector` (about 2% of its length), for
/// copy `n`: near its source, never equal to it.
fn moved(vector: &[f32], n: usize) -> Vec<f32> {
    let mut state = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut moved: Vec<f32> = vector
        .iter()
        .map(|x| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let noise = (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            x + noise * 0.002
        })
        .collect();
    let norm = moved.iter().map(|x| x * x).sum::<f32>().sqrt();
    moved.iter_mut().for_each(|x| *x /= norm);
    moved
}

/// Writes `count` memories of other users into the store: copies of
/// `sources` (real memories with their vectors), each a new id, owner and
/// slightly moved vector.
fn fill_others(store: &dyn VectorStore, sources: &[Stored], count: usize) -> anyhow::Result<()> {
    for start in (0..count).step_by(BATCH) {
        let chunk: Vec<Stored> = (start..count.min(start + BATCH))
            .map(|n| {
                let source = &sources[n % sources.len()];
                let mut memory = source.memory.clone();
                memory.id = uuid::Uuid::new_v4().to_string();
                memory.user_id = format!("other-user-{}", n % OTHER_USERS);
                Stored {
                    memory,
                    vector: moved(&source.vector, n),
                }
            })
            .collect();
        store.upsert(chunk)?;
    }
    Ok(())
}

pub fn run(args: &[String]) -> anyhow::Result<Report> {
    let options = options(args)?;
    let models = ModelsConfig::default_in(&default_models_dir());
    models.check_files()?;
    let mut report = Report::new("memory");
    report.set("user_memories", options.user_memories);
    report.set("total_memories", options.total);
    report.set("threads", options.threads);

    // 1. The embedder alone, against Python, at batch 32, on the texts the
    // batches below create (their length decides the rate).
    let texts: Vec<String> = (0..512).map(memory_text).collect();
    let seconds = options.embed_seconds;
    let ours = embed_throughput(
        &models,
        options.threads,
        &[32],
        &texts,
        Duration::from_secs_f64(seconds),
    )?[0]
        .1;
    let python = dirs_home().join(".cache/hippo/models-venv/bin/python");
    let theirs = python_throughput(&python, &models, options.threads, &[32], &texts, seconds)?[0].1;
    println!(
        "embedding, batch 32: hippo {ours:.1} texts/s, Python onnxruntime {theirs:.1} texts/s, ratio {:.2}",
        ours / theirs
    );
    report.float("embed_per_s_b32", ours, 1);
    report.float("python_embed_per_s_b32", theirs, 1);
    report.float("embed_ratio_b32", ours / theirs, 3);

    let plugins = tempfile::tempdir()?;
    match Memory::check(&options.plugin) {
        memory @ Memory::Available { .. } => drop(memory.workloads(plugins.path())?),
        Memory::Unavailable(why) => bail!("{why}"),
    }
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    tokio.block_on(async {
        let stack = Stack::start(&Backend::Embedded, plugins.path(), options.threads, true).await?;
        let outcome = measure(&stack, &options, ours, &mut report).await;
        stack.stop().await?;
        outcome
    })?;
    Ok(report)
}

/// Steps 2 to 5; `embed_rate` is step 1's `embed_per_s_b32`.
async fn measure(
    stack: &Stack,
    options: &Options,
    embed_rate: f64,
    report: &mut Report,
) -> anyhow::Result<()> {
    let services = stack.registry.runtime().services();
    let store: Arc<dyn VectorStore> = MemoryServices::of(services)
        .and_then(|m| m.store.clone())
        .context("no memory store")?;
    let rss_models = rss_mib()?;
    report.float("worker_rss_models_mib", rss_models, 1);
    println!("worker with the models loaded: {rss_models:.0} MiB resident");

    // 2. The user's memories, a batch per task.
    let batches = options.user_memories / BATCH;
    let (mut ids, mut bulk) = (Vec::new(), Duration::ZERO);
    for b in 0..batches - 1 {
        let (stored, took) = batch_create(stack, b * BATCH, false).await?;
        ids.extend(stored);
        bulk += took;
    }
    let bulk_rate = ((batches - 1) * BATCH) as f64 / bulk.as_secs_f64();
    let (stored, took) = batch_create(stack, (batches - 1) * BATCH, true).await?;
    ids.extend(stored);
    let dedup_rate = BATCH as f64 / took.as_secs_f64();
    println!(
        "memory.batch-create of {BATCH}: {bulk_rate:.1} memories/s without duplicate checks \
         ({} batches), {dedup_rate:.1} with them (against {} stored); {:.0}% / {:.0}% of the raw embedding rate",
        batches - 1,
        (batches - 1) * BATCH,
        100.0 * bulk_rate / embed_rate,
        100.0 * dedup_rate / embed_rate,
    );
    report.float("batch_create_per_s", bulk_rate, 1);
    report.float("batch_create_vs_embed", bulk_rate / embed_rate, 3);
    report.float("batch_create_dedup_per_s", dedup_rate, 1);
    report.float("batch_create_dedup_vs_embed", dedup_rate / embed_rate, 3);

    // 3. Everyone else's memories, then the index.
    let others = options.total - ids.len();
    let started = Instant::now();
    tokio::task::spawn_blocking({
        let store = store.clone();
        move || -> anyhow::Result<()> {
            let sources = store.get(&ids)?;
            ensure!(!sources.is_empty(), "the user's memories were not stored");
            fill_others(store.as_ref(), &sources, others)?;
            Ok(())
        }
    })
    .await??;
    let fill = started.elapsed();
    let started = Instant::now();
    tokio::task::spawn_blocking({
        let store = store.clone();
        move || store.optimize()
    })
    .await??;
    let optimize = started.elapsed();
    println!(
        "{others} memories of {OTHER_USERS} other users written in {:.1} s; index built in {:.1} s",
        fill.as_secs_f64(),
        optimize.as_secs_f64()
    );
    report.float("fill_others_s", fill.as_secs_f64(), 1);
    report.float("optimize_s", optimize.as_secs_f64(), 1);

    // 4. Recall: "<subject> <activity>" of a stored memory, sequentially;
    // on topic when the best hit's sentence starts with it.
    let query = |q: usize| {
        let [subject, activity, ..] = memory_parts((q * 7_919) % options.user_memories);
        format!("{subject} {activity}")
    };
    for q in 0..20 {
        recall(stack, &query(options.queries + q)).await?;
    }
    let (mut samples, mut on_topic) = (Vec::with_capacity(options.queries), 0usize);
    for q in 0..options.queries {
        let text = query(q);
        let started = Instant::now();
        let output = recall(stack, &text).await?;
        samples.push(started.elapsed());
        let top = output["results"][0]["memory"]["text"]
            .as_str()
            .unwrap_or_default();
        if top.starts_with(&text) {
            on_topic += 1;
        }
    }
    let summary = Summary::of(&samples);
    let on_topic_pct = 100.0 * on_topic as f64 / options.queries as f64;
    println!(
        "memory.recall (hybrid, k 5, {} of {} memories are the user's): p50 {:.2} ms, p99 {:.2} ms; \
         the best hit has the asked subject and activity in {on_topic_pct:.0}% of queries",
        options.user_memories,
        options.total,
        summary.p50_us / 1e3,
        summary.p99_us / 1e3
    );
    report.float("recall_p50_ms", summary.p50_us / 1e3, 2);
    report.float("recall_p99_ms", summary.p99_us / 1e3, 2);
    report.float("recall_mean_ms", summary.mean_us / 1e3, 2);
    report.float("recall_on_topic_pct", on_topic_pct, 1);

    // 5. The worker's memory with everything loaded.
    let rss = rss_mib()?;
    println!(
        "worker with the models and {} memories: {rss:.0} MiB resident",
        options.total
    );
    report.float("worker_rss_mib", rss, 1);
    Ok(())
}
