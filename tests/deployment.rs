//! `docker-compose.yml`, checked by parsing in the default suite (which has
//! no Docker engine; `scripts/test-compose` runs the stack for real): every
//! service runs a `hippo` command this binary accepts, against the Redis
//! service, with the plugins volume mounted and the `.env` file read; the
//! file is one Debian's docker-compose 1.29 takes; `.env.example` documents
//! every variable of the reference stack that hippo reads.

use std::process::Command;

fn compose() -> serde_yaml::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docker-compose.yml");
    let mut compose: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap())
            .expect("docker-compose.yml parses");
    // Resolve the `<<: *hippo` merge keys as Compose does.
    compose.apply_merge().expect("merge keys resolve");
    compose
}

#[test]
fn every_hippo_service_runs_a_command_the_binary_accepts() {
    let compose = compose();
    let services = compose["services"].as_mapping().expect("services");
    assert!(
        services.contains_key("redis")
            && services.contains_key("api")
            && services.contains_key("worker")
    );
    // docker-compose 1.29 refuses a top-level `name`.
    assert!(compose.get("name").is_none(), "no top-level name");
    for name in ["api", "dashboard", "worker"] {
        let service = &compose["services"][name];
        let command: Vec<String> = service["command"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        // `--help` after the arguments makes clap parse them all, then print help.
        let mut args = command.clone();
        args.push("--help".into());
        let parsed = Command::new(hippo_integration_tests::hippo_bin())
            .args(&args)
            .output()
            .unwrap();
        assert!(
            parsed.status.success(),
            "{name}: `hippo {}` is refused: {}",
            command.join(" "),
            String::from_utf8_lossy(&parsed.stderr)
        );
        assert_eq!(
            service["environment"]["HIPPO_BROKER_URL"].as_str(),
            Some("redis://redis:6379/1"),
            "{name}"
        );
        let volumes = service["volumes"].as_sequence().unwrap();
        assert!(
            volumes
                .iter()
                .any(|v| v.as_str() == Some("plugins:/var/lib/hippo/plugins")),
            "{name}"
        );
        assert_eq!(
            service["depends_on"]["redis"]["condition"].as_str(),
            Some("service_healthy"),
            "{name}"
        );
        assert_eq!(service["env_file"].as_str(), Some(".env"), "{name}");
        // Every process shares one memory store: the Qdrant server.
        assert_eq!(
            service["environment"]["HIPPO_QDRANT_URL"].as_str(),
            Some("http://qdrant:6334"),
            "{name}"
        );
    }
    assert!(
        compose["services"]["qdrant"]["image"]
            .as_str()
            .is_some_and(|image| image.starts_with("qdrant/qdrant:"))
    );
    let redis: Vec<&str> = compose["services"]["redis"]["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        redis.windows(2).any(|w| w == ["--appendonly", "yes"]),
        "Redis keeps an AOF"
    );
}

#[test]
fn health_checks_ask_the_services_themselves() {
    let compose = compose();
    for (name, probe) in [
        ("api", "/readyz"),
        ("dashboard", "/healthcheck"),
        ("qdrant", "/readyz"),
        ("redis", "ping"),
    ] {
        let test: Vec<&str> = compose["services"][name]["healthcheck"]["test"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{name} has a health check"))
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(
            test.iter().any(|part| part.contains(probe)),
            "{name}: {test:?} asks {probe}"
        );
    }
}

#[test]
fn the_env_example_documents_every_reference_variable_hippo_reads() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../.env.example");
    let example = std::fs::read_to_string(path).unwrap();
    let named: Vec<&str> = example
        .lines()
        .filter_map(|line| line.trim_start_matches('#').split_once('='))
        .map(|(name, _)| name.trim())
        .collect();
    for variable in [
        "CELERY_BROKER_URL",
        "CELERY_RESULT_BACKEND",
        "CELERY_WORKER_CONCURRENCY",
        "CELERY_WORKER_PREFETCH_MULTIPLIER",
        "CELERY_TASK_ACKS_LATE",
        "CELERY_WORKER_MAX_TASKS_PER_CHILD",
        "FLOWER_USER",
        "FLOWER_PASSWORD",
        "FLOWER_BASIC_AUTH",
        "AUTO_DEDUP_ENABLED",
        "AUTO_CONSOLIDATION_ENABLED",
        "DEDUP_INTERVAL_HOURS",
        "CONSOLIDATION_INTERVAL_HOURS",
        "EXPIRATION_INTERVAL_HOURS",
        "HIPPO_API_KEY",
    ] {
        assert!(named.contains(&variable), "{variable} is in .env.example");
    }
    // The example starts as it is: reference settings hippo honours only.
    let vars = example
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.to_string(), value.to_string()));
    let settings = hippo::config::ReferenceSettings::read(vars, Some("redis://redis:6379/1"))
        .expect("the example's settings are honoured");
    assert!(settings.unknown.is_empty(), "{:?}", settings.unknown);
}

/// The compose test's override puts every service on the host's network.
#[test]
fn the_compose_test_keeps_every_container_on_loopback() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/compose/host-network.yml");
    let mut overlay: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    overlay.apply_merge().unwrap();
    let main = compose();
    for (name, _) in main["services"].as_mapping().unwrap() {
        assert_eq!(
            overlay["services"][name]["network_mode"].as_str(),
            Some("host"),
            "{name:?}"
        );
    }
}
