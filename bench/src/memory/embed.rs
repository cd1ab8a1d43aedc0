//! Embedding throughput: hippo's embedder against Python onnxruntime on the
//! same graph, tokenizer, pooling, threads and texts.
//!
//! Each figure is texts per second for one caller embedding consecutive
//! batches of a fixed size for a fixed time, after one warm-up batch. The
//! texts are memory-like sentences of 4 to 60 words (see [`bench_texts`]).

use crate::report::Report;
use anyhow::{Context as _, bail, ensure};
use hippo::models::{Models, ModelsConfig, TextKind, default_models_dir};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Batch sizes measured unless `--batches` says otherwise.
const BATCHES: [usize; 3] = [1, 8, 32];

/// Texts per second of `config`'s embedder with `threads` intra-op threads,
/// one figure per batch size in `batches`, each measured for `duration`.
pub fn embed_throughput(
    config: &ModelsConfig,
    threads: usize,
    batches: &[usize],
    texts: &[String],
    duration: Duration,
) -> anyhow::Result<Vec<(usize, f64)>> {
    let mut config = config.clone();
    config.embedder.session.intra_op_threads = threads;
    config.reranker = None;
    let models = Models::load(&config).context("loading the embedder")?;
    let embedder = &models.embedder;
    let mut rates = Vec::new();
    for &size in batches {
        ensure!(
            size >= 1 && size <= texts.len(),
            "batch size {size} for {} texts",
            texts.len()
        );
        embedder.embed_blocking(texts[..size].to_vec(), TextKind::Document)?;
        let (mut done, mut position, start) = (0usize, 0usize, Instant::now());
        while start.elapsed() < duration {
            if position + size > texts.len() {
                position = 0;
            }
            embedder.embed_blocking(
                texts[position..position + size].to_vec(),
                TextKind::Document,
            )?;
            done += size;
            position += size;
        }
        rates.push((size, done as f64 / start.elapsed().as_secs_f64()));
    }
    Ok(rates)
}

/// `count` memory-like sentences of 4 to 60 words, the same on every run.
pub fn bench_texts(count: usize) -> Vec<String> {
    const WORDS: &[&str] = &[
        "the",
        "user",
        "prefers",
        "dark",
        "chocolate",
        "and",
        "green",
        "tea",
        "in",
        "the",
        "morning",
        "meeting",
        "with",
        "the",
        "design",
        "team",
        "moved",
        "to",
        "Thursday",
        "afternoon",
        "remember",
        "to",
        "call",
        "mother",
        "about",
        "her",
        "birthday",
        "dinner",
        "next",
        "week",
        "flight",
        "to",
        "Tokyo",
        "leaves",
        "at",
        "nine",
        "budget",
        "review",
        "covers",
        "travel",
        "hiring",
        "cloud",
        "costs",
        "daughter",
        "starts",
        "school",
        "in",
        "September",
        "allergic",
        "to",
        "peanuts",
        "runs",
        "five",
        "kilometres",
        "every",
        "Sunday",
        "favourite",
        "book",
        "is",
        "about",
        "memory",
    ];
    // A fixed linear congruential sequence: the same texts for hippo and Python.
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as usize
    };
    (0..count)
        .map(|_| {
            let words = 4 + next() % 57;
            (0..words)
                .map(|_| WORDS[next() % WORDS.len()])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// `bench embed [--threads N] [--batches 1,8,32] [--seconds S] [--graph PATH]
/// [--python PATH]`: hippo's figures, then Python's on the same graph.
pub fn run(args: &[String]) -> anyhow::Result<Report> {
    let dir = default_models_dir();
    let mut config = ModelsConfig::default_in(&dir);
    let mut threads = std::thread::available_parallelism().map_or(1, usize::from);
    let mut batches = BATCHES.to_vec();
    let mut seconds = 3.0;
    let mut python = dirs_home().join(".cache/hippo/models-venv/bin/python");
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--threads" => threads = value()?.parse()?,
            "--batches" => {
                batches = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "--seconds" => seconds = value()?.parse()?,
            "--graph" => config.embedder.onnx = PathBuf::from(value()?),
            "--python" => python = PathBuf::from(value()?),
            other => bail!("unknown option {other}"),
        }
    }
    config.check_files()?;
    let texts = bench_texts(512);
    let duration = Duration::from_secs_f64(seconds);
    println!(
        "embed benchmark: {}, {threads} threads, batches {batches:?}, {seconds} s each",
        config.embedder.onnx.display()
    );
    let ours = embed_throughput(&config, threads, &batches, &texts, duration)?;
    let theirs = python_throughput(&python, &config, threads, &batches, &texts, seconds)?;
    let mut report = Report::new("embed");
    report.set("graph", config.embedder.onnx.display().to_string());
    report.set("threads", threads);
    for ((size, hippo), (_, python)) in ours.iter().zip(&theirs) {
        println!(
            "batch {size:>3}: hippo {hippo:>7.1} texts/s, Python onnxruntime {python:>7.1} texts/s, ratio {:.2}",
            hippo / python
        );
        report.float(&format!("hippo_batch{size}_texts_per_s"), *hippo, 1);
        report.float(&format!("python_batch{size}_texts_per_s"), *python, 1);
        report.float(&format!("ratio_batch{size}"), hippo / python, 3);
    }
    Ok(report)
}

/// The same measurement by bench/python/embed_bench.py.
pub(crate) fn python_throughput(
    python: &Path,
    config: &ModelsConfig,
    threads: usize,
    batches: &[usize],
    texts: &[String],
    seconds: f64,
) -> anyhow::Result<Vec<(usize, f64)>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/embed_bench.py");
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), serde_json::to_string(texts)?)?;
    let batches_arg = batches
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let output = Command::new(python)
        .arg(&script)
        .args(["--graph", &config.embedder.onnx.to_string_lossy()])
        .args(["--tokenizer", &config.embedder.tokenizer.to_string_lossy()])
        .args(["--texts", &file.path().to_string_lossy()])
        .args(["--threads", &threads.to_string(), "--batches", &batches_arg])
        .args([
            "--seconds",
            &seconds.to_string(),
            "--max-length",
            &config.embedder.max_length.to_string(),
        ])
        .output()
        .with_context(|| {
            format!(
                "running {} (scripts/fetch-models creates it)",
                python.display()
            )
        })?;
    ensure!(
        output.status.success(),
        "embed_bench.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout)?;
    let line = stdout
        .lines()
        .last()
        .context("embed_bench.py printed nothing")?;
    let json: serde_json::Value = serde_json::from_str(line)?;
    batches
        .iter()
        .map(|size| {
            let rate = json["texts_per_second"][size.to_string()].as_f64();
            Ok((
                *size,
                rate.with_context(|| format!("no figure for batch {size} in {line}"))?,
            ))
        })
        .collect()
}

pub(crate) fn dirs_home() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from)
}
