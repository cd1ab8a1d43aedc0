//! The models capability on the real all-MiniLM-L6-v2 graphs and the real
//! ONNX Runtime, as `scripts/fetch-models` provides them (scripts/test runs
//! it through scripts/setup). Reference outputs come from Python's
//! onnxruntime on the same graphs (all-minilm-l6-v2/reference.json, written
//! by fetch-models).

use hippo_models::{
    ModelConfig, ModelError, Models, ModelsConfig, Pooling, RerankerConfig, TextKind,
    default_models_dir,
};
use std::path::PathBuf;
use std::sync::{Arc, Barrier, OnceLock};

/// The models folder, checked: a missing file fails the test with the
/// command that fetches it, never skips it.
fn models_dir() -> PathBuf {
    let dir = default_models_dir();
    let mut config = ModelsConfig::default_in(&dir);
    config.reranker = Some(RerankerConfig::test_cross_encoder_in(&dir));
    if let Err(error) = config.check_files() {
        panic!("{error}");
    }
    let reference = reference_path(&dir);
    assert!(
        reference.is_file(),
        "{} is missing: run scripts/fetch-models",
        reference.display()
    );
    dir
}

fn reference_path(dir: &std::path::Path) -> PathBuf {
    dir.join("all-minilm-l6-v2/reference.json")
}

fn reference() -> &'static serde_json::Value {
    static REFERENCE: OnceLock<serde_json::Value> = OnceLock::new();
    REFERENCE.get_or_init(|| {
        let text =
            std::fs::read_to_string(reference_path(&models_dir())).expect("reference.json reads");
        serde_json::from_str(&text).expect("reference.json parses")
    })
}

fn strings(value: &serde_json::Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn vectors(value: &serde_json::Value) -> Vec<Vec<f32>> {
    serde_json::from_value(value.clone()).unwrap()
}

/// The default models (int8 MiniLM), loaded once for the tests that only read.
fn default_models() -> &'static Models {
    static MODELS: OnceLock<Models> = OnceLock::new();
    MODELS.get_or_init(|| {
        Models::load(&ModelsConfig::default_in(&models_dir())).expect("default models load")
    })
}

/// Models with the embedder of `embedder` (and the default runtime library).
fn models_with(embedder: ModelConfig, reranker: Option<RerankerConfig>) -> Models {
    let mut config = ModelsConfig::default_in(&models_dir());
    config.embedder = embedder;
    config.reranker = reranker;
    Models::load(&config).expect("models load")
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

fn max_abs_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs()))
        .fold(0.0, f32::max)
}

fn embed_one_by_one(models: &Models, texts: &[String]) -> Vec<Vec<f32>> {
    texts
        .iter()
        .map(|t| {
            models
                .embedder
                .embed_blocking(vec![t.clone()], TextKind::Document)
                .unwrap()
                .remove(0)
        })
        .collect()
}

#[test]
fn embeddings_match_python_onnxruntime_on_the_int8_and_fp32_graphs() {
    let reference = reference();
    let texts = strings(&reference["texts"]);
    let models = default_models();
    assert_eq!(models.embedder.dimension(), 384);
    assert_eq!(models.embedder.model_name(), "all-MiniLM-L6-v2-int8");
    let int8 = models
        .embedder
        .embed_blocking(texts.clone(), TextKind::Document)
        .unwrap();
    let mut fp32_config = ModelConfig::minilm_in(&models_dir());
    fp32_config.onnx = models_dir().join("all-minilm-l6-v2/model-fp32.onnx");
    fp32_config.name = "all-MiniLM-L6-v2-fp32".into();
    let fp32 = models_with(fp32_config, None)
        .embedder
        .embed_blocking(texts.clone(), TextKind::Document)
        .unwrap();
    for (ours, theirs, graph) in [
        (&int8, vectors(&reference["int8_mean_normalized"]), "int8"),
        (&fp32, vectors(&reference["fp32_mean_normalized"]), "fp32"),
    ] {
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            let c = cosine(a, b);
            println!("{graph} text {i}: cosine to Python {c:.7}");
            assert!(
                c > 0.999,
                "{graph} text {i} ({:?}): cosine {c} to Python's",
                texts[i]
            );
            assert!(
                (a.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-4,
                "normalised"
            );
        }
    }
    let to_fp32: Vec<f32> = int8.iter().zip(&fp32).map(|(a, b)| cosine(a, b)).collect();
    println!("int8 against fp32, per text: {to_fp32:?}");
    assert!(
        to_fp32.iter().all(|&c| c > 0.98),
        "int8 stays close to fp32: {to_fp32:?}"
    );
}

#[test]
fn a_text_embeds_the_same_alone_and_in_a_batch_of_mixed_lengths() {
    let mut texts = strings(&reference()["texts"]);
    texts.push("ok".into());
    texts.push(
        "A somewhat longer sentence about a meeting with the product team on Thursday.".into(),
    );
    // One run for the whole batch, however much padding that takes.
    let mut padded = ModelConfig::minilm_in(&models_dir());
    padded.session.batch_max_padding = f64::INFINITY;
    for (models, grouping) in [
        (default_models(), "length-bucketed"),
        (&models_with(padded, None), "padded to the longest"),
    ] {
        let alone = embed_one_by_one(models, &texts);
        let together = models
            .embedder
            .embed_blocking(texts.clone(), TextKind::Document)
            .unwrap();
        let diff = max_abs_diff(&alone, &together);
        println!(
            "{grouping}: alone against batched, max |difference| {diff:e} (bit-identical: {})",
            alone == together
        );
        assert!(diff <= 1e-5, "a text's vector depends on its batch: {diff}");
    }
}

#[test]
fn a_paraphrase_is_a_duplicate_and_an_unrelated_sentence_is_not() {
    let texts: Vec<String> = [
        "I like dark chocolate",
        "I prefer dark chocolate",
        "Paris is the capital of France",
    ]
    .map(String::from)
    .into();
    let v = default_models()
        .embedder
        .embed_blocking(texts, TextKind::Document)
        .unwrap();
    let paraphrase = cosine(&v[0], &v[1]);
    let unrelated = cosine(&v[0], &v[2]);
    println!("cosine: paraphrase {paraphrase:.4}, unrelated {unrelated:.4} (dedup threshold 0.88)");
    assert!(
        paraphrase > 0.88,
        "the memory dedup threshold must catch the paraphrase: {paraphrase}"
    );
    assert!(unrelated < 0.3, "unrelated: {unrelated}");
}

#[test]
fn concurrent_callers_get_their_own_vectors_from_shared_batches() {
    // Its own embedder, so its statistics are this test's alone.
    let models = models_with(ModelConfig::minilm_in(&models_dir()), None);
    let callers = 12;
    let texts: Vec<Vec<String>> = (0..callers)
        .map(|c| {
            (0..=c % 4)
                .map(|i| {
                    format!(
                        "caller {c} remembers fact number {i} about {}",
                        "tea ".repeat(c)
                    )
                })
                .collect()
        })
        .collect();
    let expected: Vec<Vec<Vec<f32>>> = texts.iter().map(|t| embed_one_by_one(&models, t)).collect();
    let before = models.embedder.stats();
    let barrier = Arc::new(Barrier::new(callers));
    let threads: Vec<_> = texts
        .iter()
        .cloned()
        .map(|mine| {
            let (embedder, barrier) = (Arc::clone(&models.embedder), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                embedder.embed_blocking(mine, TextKind::Document).unwrap()
            })
        })
        .collect();
    for ((thread, expected), mine) in threads.into_iter().zip(&expected).zip(&texts) {
        let got = thread.join().unwrap();
        assert_eq!(got.len(), mine.len());
        assert!(
            max_abs_diff(&got, expected) <= 1e-5,
            "a caller got someone else's vectors"
        );
    }
    let after = models.embedder.stats();
    let (batches, items) = (after.batches - before.batches, after.items - before.items);
    let mean = items as f64 / batches as f64;
    println!(
        "{callers} concurrent callers, {items} texts: {batches} batches, mean batch {mean:.1}"
    );
    assert_eq!(items, texts.iter().map(Vec::len).sum::<usize>() as u64);
    assert!(
        mean > 1.5,
        "concurrent requests must share batches: {batches} batches for {items} texts"
    );
    assert_eq!(after.requests - before.requests, callers as u64);
}

#[test]
fn the_async_api_gives_the_blocking_api_s_vectors() {
    let models = default_models();
    let texts: Vec<String> = (0..6)
        .map(|i| format!("async memory {i}: {}", "walk ".repeat(i)))
        .collect();
    let expected = embed_one_by_one(models, &texts);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let got: Vec<Vec<f32>> = runtime.block_on(async {
        let calls = texts.iter().map(|t| {
            let embedder = Arc::clone(&models.embedder);
            let text = t.clone();
            tokio::spawn(async move {
                embedder
                    .embed(vec![text], TextKind::Document)
                    .await
                    .unwrap()
                    .remove(0)
            })
        });
        let mut out = Vec::new();
        for call in calls.collect::<Vec<_>>() {
            out.push(call.await.unwrap());
        }
        out
    });
    assert!(max_abs_diff(&got, &expected) <= 1e-5);
    assert!(
        runtime
            .block_on(models.embedder.embed(Vec::new(), TextKind::Query))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn cls_pooling_normalisation_and_the_query_prefix_come_from_the_configuration() {
    let reference = reference();
    let texts = strings(&reference["texts"]);
    let mut config = ModelConfig::minilm_in(&models_dir());
    config.name = "minilm-cls".into();
    config.pooling = Pooling::Cls;
    config.normalize = false;
    config.query_prefix = Some("query: ".into());
    let models = models_with(config, None);
    let cls = models
        .embedder
        .embed_blocking(texts.clone(), TextKind::Document)
        .unwrap();
    for (i, (ours, theirs)) in cls
        .iter()
        .zip(vectors(&reference["int8_cls_raw"]))
        .enumerate()
    {
        let c = cosine(ours, &theirs);
        let norm_ratio = ours.iter().map(|x| x * x).sum::<f32>().sqrt()
            / theirs.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!(
            c > 0.999 && (norm_ratio - 1.0).abs() < 1e-3,
            "text {i}: cosine {c}, norm ratio {norm_ratio}"
        );
    }
    let embedder = &models.embedder;
    let query = embedder
        .embed_blocking(vec!["dark chocolate".into()], TextKind::Query)
        .unwrap();
    let prefixed = embedder
        .embed_blocking(vec!["query: dark chocolate".into()], TextKind::Document)
        .unwrap();
    let document = embedder
        .embed_blocking(vec!["dark chocolate".into()], TextKind::Document)
        .unwrap();
    assert_eq!(query, prefixed, "a query is embedded with its prefix");
    assert_ne!(query, document, "a document is embedded without it");
}

#[test]
fn the_reranker_scores_pairs_like_python_in_any_batch() {
    let reference = reference();
    let dir = models_dir();
    let mut reranker = RerankerConfig::test_cross_encoder_in(&dir);
    // every pair in one padded run, to check the padding changes no score
    reranker.session.batch_max_padding = f64::INFINITY;
    let models = models_with(ModelConfig::minilm_in(&dir), Some(reranker));
    let reranker = models.reranker.as_ref().expect("a reranker is configured");
    let query = reference["rerank_query"].as_str().unwrap();
    let passages = strings(&reference["rerank_passages"]);
    let expected: Vec<f32> = serde_json::from_value(reference["rerank_logits"].clone()).unwrap();
    let together = reranker.score_blocking(query, &passages).unwrap();
    println!("logits {together:?}, Python {expected:?}");
    assert_eq!(together.len(), passages.len());
    for (ours, theirs) in together.iter().zip(&expected) {
        assert!(
            (ours - theirs).abs() < 1e-3,
            "logit {ours}, Python {theirs}"
        );
    }
    let alone: Vec<f32> = passages
        .iter()
        .map(|p| {
            reranker
                .score_blocking(query, std::slice::from_ref(p))
                .unwrap()[0]
        })
        .collect();
    assert!(
        together
            .iter()
            .zip(&alone)
            .all(|(a, b)| (a - b).abs() <= 1e-5),
        "{together:?} vs {alone:?}"
    );
    // A pair is one sequence with the query first: swapping the two changes the score.
    let swapped = reranker
        .score_blocking(&passages[0], &[query.to_string()])
        .unwrap()[0];
    assert!(
        (swapped - together[0]).abs() > 1e-4,
        "pair order must matter: {swapped} vs {}",
        together[0]
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let asynchronous = runtime.block_on(reranker.score(query, &passages)).unwrap();
    assert_eq!(asynchronous.len(), passages.len());
    assert!(
        asynchronous
            .iter()
            .zip(&together)
            .all(|(a, b)| (a - b).abs() <= 1e-5)
    );
    // together, alone, swapped, async: the load's own check is not counted
    assert_eq!(reranker.stats().items, (3 * passages.len() + 1) as u64);
}

#[test]
fn missing_files_and_a_second_runtime_library_are_refused_with_clear_errors() {
    let empty = tempfile::tempdir().unwrap();
    match Models::load(&ModelsConfig::default_in(empty.path())) {
        Err(error @ ModelError::MissingFile { .. }) => {
            assert!(
                error.to_string().contains("scripts/fetch-models"),
                "{error}"
            )
        }
        other => panic!("expected a missing file, got {other:?}"),
    }
    let _ = default_models();
    let copy = empty.path().join("libonnxruntime.so.1.32.0");
    std::fs::copy(
        ModelsConfig::default_in(&models_dir()).runtime_library,
        &copy,
    )
    .unwrap();
    let mut config = ModelsConfig::default_in(&models_dir());
    config.runtime_library = copy;
    match Models::load(&config) {
        Err(ModelError::Runtime { message, .. }) => assert!(
            message.contains("loaded in this process already"),
            "{message}"
        ),
        other => panic!("expected a refused second library, got {other:?}"),
    }
}

#[test]
fn duplicate_thresholds_come_from_the_configuration() {
    // Absent from a configuration: the reference's, made for BGE.
    let config: ModelsConfig = toml::from_str(
        r#"
        runtime_library = "/models/libonnxruntime.so.1.32.0"
        [embedder]
        name = "bge-small-en-v1.5"
        tokenizer = "/models/bge/tokenizer.json"
        onnx = "/models/bge/model.onnx"
        pooling = "cls"
        "#,
    )
    .unwrap();
    assert_eq!(
        (config.embedder.duplicate_above, config.embedder.same_above),
        (0.88, 0.95)
    );
    // The default MiniLM's, and what its embedder reports.
    assert_eq!(default_models().embedder.thresholds(), (0.90, 0.99));
    // Thresholds out of order are refused at load.
    let mut embedder = ModelsConfig::default_in(&models_dir()).embedder;
    embedder.same_above = 0.85;
    let mut config = ModelsConfig::default_in(&models_dir());
    config.embedder = embedder;
    match Models::load(&config) {
        Err(ModelError::Config(message)) => assert!(message.contains("same_above"), "{message}"),
        other => panic!("expected refused thresholds, got {:?}", other.map(|_| ())),
    }
}
