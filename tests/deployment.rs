//! `docker-compose.yml` cannot be run here (no Docker engine), so it is
//! checked by parsing: every service runs a `hippo` command this binary
//! accepts, against the Redis service, with the plugins volume mounted.

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
    for name in ["api", "worker"] {
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
