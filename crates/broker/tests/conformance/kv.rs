//! The key-value store beside the queues (plugins' `kv` capability): its
//! semantics, and each plugin namespace's quota on keys and bytes.

use super::*;
use hippo_broker::{KvError, KvQuota, KvSpace};
use hippo_kv::QuotaKind;

conformance!(
    kv_set_get_delete_and_ttl,
    kv_incr_counts_and_refuses_text,
    kv_namespaces_and_the_host_space_are_apart,
    kv_quota_on_keys_refuses_a_new_key_and_names_the_numbers,
    kv_quota_on_bytes_counts_an_overwrite_once,
    kv_quota_covers_incr_and_leaves_a_refused_one_undone,
    kv_delete_and_expiry_free_quota,
    kv_concurrent_sets_cannot_overshoot_the_quota,
);

/// A plugin's space with the default quota.
const PLUGIN: KvSpace<'static> = KvSpace::Plugin {
    namespace: "plugin-a",
    quota: KvQuota::DEFAULT,
};

fn space(namespace: &'static str, max_keys: u64, max_bytes: u64) -> KvSpace<'static> {
    KvSpace::Plugin {
        namespace,
        quota: KvQuota {
            max_keys,
            max_bytes,
        },
    }
}

/// The numbers of a refusal by quota (panics on anything else).
#[track_caller]
fn refusal<T: std::fmt::Debug>(result: Result<T, KvError>) -> (QuotaKind, u64, u64, u64) {
    match result {
        Err(KvError::QuotaExceeded {
            kind,
            used,
            adding,
            max,
        }) => (kind, used, adding, max),
        other => panic!("expected a refusal by quota, got {other:?}"),
    }
}

async fn kv_set_get_delete_and_ttl(backend: Backend) {
    let b = open(backend).await;
    assert_eq!(b.kv_get(PLUGIN, "missing").await.unwrap(), None);
    b.kv_set(PLUGIN, "plain", b"value", None).await.unwrap();
    assert_eq!(
        b.kv_get(PLUGIN, "plain").await.unwrap().as_deref(),
        Some(&b"value"[..])
    );
    b.kv_set(PLUGIN, "plain", b"second", None).await.unwrap();
    assert_eq!(
        b.kv_get(PLUGIN, "plain").await.unwrap().as_deref(),
        Some(&b"second"[..])
    );
    // Any bytes round-trip, as they are.
    let binary: Vec<u8> = (0..=255).collect();
    b.kv_set(PLUGIN, "binary", &binary, None).await.unwrap();
    assert_eq!(b.kv_get(PLUGIN, "binary").await.unwrap(), Some(binary));

    b.kv_set(
        PLUGIN,
        "short",
        b"gone soon",
        Some(Duration::from_millis(150)),
    )
    .await
    .unwrap();
    assert!(b.kv_get(PLUGIN, "short").await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        b.kv_get(PLUGIN, "short").await.unwrap(),
        None,
        "the TTL passed"
    );
    assert!(
        !b.kv_delete(PLUGIN, "short").await.unwrap(),
        "an expired key is gone"
    );

    // A set without a TTL clears an earlier one.
    b.kv_set(PLUGIN, "kept", b"1", Some(Duration::from_millis(100)))
        .await
        .unwrap();
    b.kv_set(PLUGIN, "kept", b"2", None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        b.kv_get(PLUGIN, "kept").await.unwrap().as_deref(),
        Some(&b"2"[..])
    );

    assert!(b.kv_delete(PLUGIN, "plain").await.unwrap());
    assert!(!b.kv_delete(PLUGIN, "plain").await.unwrap());
    assert_eq!(b.kv_get(PLUGIN, "plain").await.unwrap(), None);
    assert!(matches!(
        b.kv_set(PLUGIN, "", b"x", None).await,
        Err(KvError::Key)
    ));
    assert!(matches!(
        b.kv_set(space("a/b", 10, 100), "k", b"x", None).await,
        Err(KvError::Namespace)
    ));
}

async fn kv_incr_counts_and_refuses_text(backend: Backend) {
    let b = open(backend).await;
    assert_eq!(b.kv_incr(PLUGIN, "n", 5).await.unwrap(), 5);
    assert_eq!(b.kv_incr(PLUGIN, "n", -2).await.unwrap(), 3);
    assert_eq!(
        b.kv_get(PLUGIN, "n").await.unwrap().as_deref(),
        Some(&b"3"[..])
    );
    // Concurrent increments are atomic.
    let b = Arc::new(b);
    let adds: Vec<_> = (0..20)
        .map(|_| {
            let b = b.clone();
            tokio::spawn(async move { b.kv_incr(PLUGIN, "n", 1).await.unwrap() })
        })
        .collect();
    for add in adds {
        add.await.unwrap();
    }
    assert_eq!(b.kv_incr(PLUGIN, "n", 0).await.unwrap(), 23);
    // The whole range of i64 round-trips (Redis scripts hold numbers as
    // doubles, which cannot).
    assert_eq!(
        b.kv_incr(PLUGIN, "big", i64::MAX - 1).await.unwrap(),
        i64::MAX - 1
    );
    assert_eq!(b.kv_incr(PLUGIN, "big", 1).await.unwrap(), i64::MAX);
    assert!(matches!(
        b.kv_incr(PLUGIN, "big", 1).await,
        Err(KvError::NotAnInteger)
    ));
    b.kv_set(PLUGIN, "text", b"abc", None).await.unwrap();
    assert!(matches!(
        b.kv_incr(PLUGIN, "text", 1).await,
        Err(KvError::NotAnInteger)
    ));
    // The host's own keys count too (the scheduler's records).
    assert_eq!(b.kv_incr(KvSpace::Host, "n", 2).await.unwrap(), 2);
}

async fn kv_namespaces_and_the_host_space_are_apart(backend: Backend) {
    let b = open(backend).await;
    let other = space("plugin-b", 10, 1000);
    b.kv_set(PLUGIN, "k", b"a's", None).await.unwrap();
    assert_eq!(b.kv_get(other, "k").await.unwrap(), None);
    b.kv_set(other, "k", b"b's", None).await.unwrap();
    b.kv_set(KvSpace::Host, "k", b"host's", None).await.unwrap();
    assert_eq!(
        b.kv_get(PLUGIN, "k").await.unwrap().as_deref(),
        Some(&b"a's"[..])
    );
    assert_eq!(
        b.kv_get(KvSpace::Host, "k").await.unwrap().as_deref(),
        Some(&b"host's"[..])
    );
    // A plugin key is stored as `{namespace}/{key}`, which the host space
    // can name, never another plugin.
    assert_eq!(
        b.kv_get(KvSpace::Host, "plugin-b/k")
            .await
            .unwrap()
            .as_deref(),
        Some(&b"b's"[..])
    );
    assert!(b.kv_delete(other, "k").await.unwrap());
    assert!(b.kv_get(PLUGIN, "k").await.unwrap().is_some());
}

async fn kv_quota_on_keys_refuses_a_new_key_and_names_the_numbers(backend: Backend) {
    let b = open(backend).await;
    let three = space("three-keys", 3, 1 << 20);
    for key in ["a", "b", "c"] {
        b.kv_set(three, key, b"v", None).await.unwrap();
    }
    let refused = b.kv_set(three, "d", b"v", None).await;
    assert_eq!(
        refused.as_ref().map_err(ToString::to_string).unwrap_err(),
        "quota exceeded: 3 of 3 keys used, and this write adds 1 \
         ([kv] max_keys in the plugin's manifest)"
    );
    assert_eq!(refusal(refused), (QuotaKind::Keys, 3, 1, 3));
    assert_eq!(b.kv_get(three, "d").await.unwrap(), None, "nothing written");
    // Overwriting a key it holds is no new key.
    b.kv_set(three, "a", b"again", None).await.unwrap();
    assert_eq!(
        refusal(b.kv_incr(three, "n", 1).await),
        (QuotaKind::Keys, 3, 1, 3)
    );
    // The quota is the namespace's: another plugin and the host still write.
    b.kv_set(space("other", 3, 1 << 20), "d", b"v", None)
        .await
        .unwrap();
    b.kv_set(KvSpace::Host, "d", b"v", None).await.unwrap();
    // A later, larger quota (the manifest raised) lets it grow.
    b.kv_set(space("three-keys", 4, 1 << 20), "d", b"v", None)
        .await
        .unwrap();
    assert_eq!(
        refusal(b.kv_set(three, "e", b"v", None).await),
        (QuotaKind::Keys, 4, 1, 3)
    );
}

async fn kv_quota_on_bytes_counts_an_overwrite_once(backend: Backend) {
    let b = open(backend).await;
    // Bytes are key plus value: "a" and 60 bytes count 61.
    let hundred = space("hundred-bytes", 100, 100);
    b.kv_set(hundred, "a", &[1; 60], None).await.unwrap();
    // An overwrite replaces what the key counted: 61, not 122.
    b.kv_set(hundred, "a", &[2; 60], None).await.unwrap();
    b.kv_set(hundred, "a", &[3; 60], None).await.unwrap();
    assert_eq!(
        refusal(b.kv_set(hundred, "b", &[0; 39], None).await),
        (QuotaKind::Bytes, 61, 40, 100)
    );
    b.kv_set(hundred, "b", &[0; 38], None).await.unwrap();
    // Full to the byte: growing a key is refused, by what it grows.
    assert_eq!(
        refusal(b.kv_set(hundred, "a", &[0; 61], None).await),
        (QuotaKind::Bytes, 100, 1, 100)
    );
    // Shrinking one makes room for another.
    b.kv_set(hundred, "a", &[0; 10], None).await.unwrap();
    b.kv_set(hundred, "b", &[0; 88], None).await.unwrap();
    assert_eq!(
        refusal(b.kv_set(hundred, "c", b"", None).await),
        (QuotaKind::Bytes, 100, 1, 100)
    );
    assert_eq!(b.kv_get(hundred, "a").await.unwrap(), Some(vec![0; 10]));
    // The largest value fits a quota made for it, and one byte more does not.
    let one_mib = space("one-mib", 10, (1 << 20) + 1);
    b.kv_set(one_mib, "k", &vec![7; 1 << 20], None)
        .await
        .unwrap();
    assert_eq!(
        refusal(b.kv_set(one_mib, "j", b"", None).await),
        (QuotaKind::Bytes, (1 << 20) + 1, 1, (1 << 20) + 1)
    );
}

async fn kv_quota_covers_incr_and_leaves_a_refused_one_undone(backend: Backend) {
    let b = open(backend).await;
    let three = space("three-bytes", 10, 3);
    assert_eq!(b.kv_incr(three, "n", 9).await.unwrap(), 9); // "n" + "9"
    assert_eq!(b.kv_incr(three, "n", 1).await.unwrap(), 10); // "n" + "10"
    assert_eq!(
        refusal(b.kv_incr(three, "n", 90).await),
        (QuotaKind::Bytes, 3, 1, 3)
    );
    assert_eq!(
        b.kv_get(three, "n").await.unwrap().as_deref(),
        Some(&b"10"[..]),
        "the refused increment left the value as it was"
    );
    assert_eq!(b.kv_incr(three, "n", -1).await.unwrap(), 9);
    // A refused increment of a missing key leaves it missing.
    let one = space("one-key", 1, 100);
    b.kv_set(one, "k", b"v", None).await.unwrap();
    assert_eq!(
        refusal(b.kv_incr(one, "m", 1).await),
        (QuotaKind::Keys, 1, 1, 1)
    );
    assert_eq!(b.kv_get(one, "m").await.unwrap(), None);
    // An increment keeps the TTL, and the key still stops counting when
    // it expires.
    b.kv_delete(one, "k").await.unwrap();
    b.kv_set(one, "t", b"1", Some(Duration::from_millis(150)))
        .await
        .unwrap();
    assert_eq!(b.kv_incr(one, "t", 1).await.unwrap(), 2);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(b.kv_get(one, "t").await.unwrap(), None);
    b.kv_set(one, "k", b"v", None).await.unwrap();
}

async fn kv_delete_and_expiry_free_quota(backend: Backend) {
    let b = open(backend).await;
    let two = space("two-keys", 2, 1000);
    b.kv_set(two, "kept", b"v", None).await.unwrap();
    b.kv_set(two, "brief", &[0; 500], Some(Duration::from_millis(150)))
        .await
        .unwrap();
    assert_eq!(
        refusal(b.kv_set(two, "third", b"v", None).await),
        (QuotaKind::Keys, 2, 1, 2)
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The expired key stopped counting, keys and bytes: nothing else wrote
    // in between to sweep it.
    b.kv_set(two, "third", &[0; 900], None).await.unwrap();
    assert_eq!(
        refusal(b.kv_set(two, "fourth", b"v", None).await),
        (QuotaKind::Keys, 2, 1, 2)
    );
    assert_eq!(
        refusal(b.kv_set(two, "third", &[0; 995], None).await),
        (QuotaKind::Bytes, 4 + 1 + 5 + 900, 95, 1000)
    );
    // A delete gives its key and bytes back.
    assert!(b.kv_delete(two, "third").await.unwrap());
    b.kv_set(two, "fourth", &[0; 989], None).await.unwrap();
    assert_eq!(
        refusal(b.kv_set(two, "fifth", b"", None).await),
        (QuotaKind::Keys, 2, 1, 2)
    );
    // A TTL a set clears stops the key from expiring out of the count.
    b.kv_delete(two, "fourth").await.unwrap();
    b.kv_set(two, "fifth", b"v", Some(Duration::from_millis(100)))
        .await
        .unwrap();
    b.kv_set(two, "fifth", b"w", None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        refusal(b.kv_set(two, "sixth", b"", None).await),
        (QuotaKind::Keys, 2, 1, 2)
    );
    // Many keys expiring at once all stop counting, also behind many of
    // another namespace that expired first.
    let crowd = space("crowd", 100, 100_000);
    let many = space("many", 100, 100_000);
    for space in [crowd, many] {
        for i in 0..100 {
            b.kv_set(
                space,
                &format!("k{i}"),
                b"v",
                Some(Duration::from_millis(100)),
            )
            .await
            .unwrap();
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..100 {
        b.kv_set(many, &format!("j{i}"), b"v", None).await.unwrap();
    }
    assert_eq!(
        refusal(b.kv_set(many, "one-more", b"v", None).await),
        (QuotaKind::Keys, 100, 1, 100)
    );
}

async fn kv_concurrent_sets_cannot_overshoot_the_quota(backend: Backend) {
    let b = Arc::new(open(backend).await);
    let sets = |space: KvSpace<'static>, value: Vec<u8>| {
        let sets: Vec<_> = (0..40)
            .map(|i| {
                let (b, value) = (b.clone(), value.clone());
                tokio::spawn(
                    async move { b.kv_set(space, &format!("k{i:02}"), &value, None).await },
                )
            })
            .collect();
        async move {
            let mut stored = 0;
            for set in sets {
                match set.await.unwrap() {
                    Ok(()) => stored += 1,
                    Err(KvError::QuotaExceeded { .. }) => {}
                    Err(other) => panic!("{other}"),
                }
            }
            stored
        }
    };
    let ten = space("ten-keys", 10, 1 << 20);
    assert_eq!(sets(ten, b"v".to_vec()).await, 10);
    let mut readable = 0;
    for i in 0..40 {
        readable += b.kv_get(ten, &format!("k{i:02}")).await.unwrap().is_some() as usize;
    }
    assert_eq!(readable, 10);
    // 40 entries of 103 bytes under 1,000: 9 fit.
    let bytes = space("thousand-bytes", 100, 1000);
    assert_eq!(sets(bytes, vec![0; 100]).await, 9);
    assert_eq!(
        refusal(b.kv_set(bytes, "x", &[0; 73], None).await),
        (QuotaKind::Bytes, 927, 74, 1000)
    );
}
