//! The key-value store beside the queues (plugins' `kv` capability).

use super::*;

conformance!(kv_set_get_delete_and_ttl, kv_incr_counts_and_refuses_text,);

async fn kv_set_get_delete_and_ttl(backend: Backend) {
    let b = open(backend).await;
    assert_eq!(b.kv_get("missing").await.unwrap(), None);
    b.kv_set("plain", b"value", None).await.unwrap();
    assert_eq!(
        b.kv_get("plain").await.unwrap().as_deref(),
        Some(&b"value"[..])
    );
    b.kv_set("plain", b"second", None).await.unwrap();
    assert_eq!(
        b.kv_get("plain").await.unwrap().as_deref(),
        Some(&b"second"[..])
    );

    b.kv_set("short", b"gone soon", Some(Duration::from_millis(150)))
        .await
        .unwrap();
    assert!(b.kv_get("short").await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(b.kv_get("short").await.unwrap(), None, "the TTL passed");
    assert!(
        !b.kv_delete("short").await.unwrap(),
        "an expired key is gone"
    );

    // A set without a TTL clears an earlier one.
    b.kv_set("kept", b"1", Some(Duration::from_millis(100)))
        .await
        .unwrap();
    b.kv_set("kept", b"2", None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(b.kv_get("kept").await.unwrap().as_deref(), Some(&b"2"[..]));

    assert!(b.kv_delete("plain").await.unwrap());
    assert!(!b.kv_delete("plain").await.unwrap());
    assert_eq!(b.kv_get("plain").await.unwrap(), None);
    assert!(matches!(
        b.kv_set("", b"x", None).await,
        Err(hippo::broker::KvError::Key)
    ));
}

async fn kv_incr_counts_and_refuses_text(backend: Backend) {
    let b = open(backend).await;
    assert_eq!(b.kv_incr("n", 5).await.unwrap(), 5);
    assert_eq!(b.kv_incr("n", -2).await.unwrap(), 3);
    assert_eq!(b.kv_get("n").await.unwrap().as_deref(), Some(&b"3"[..]));
    // Concurrent increments are atomic.
    let b = Arc::new(b);
    let adds: Vec<_> = (0..20)
        .map(|_| {
            let b = b.clone();
            tokio::spawn(async move { b.kv_incr("n", 1).await.unwrap() })
        })
        .collect();
    for add in adds {
        add.await.unwrap();
    }
    assert_eq!(b.kv_incr("n", 0).await.unwrap(), 23);
    b.kv_set("text", b"abc", None).await.unwrap();
    assert!(matches!(
        b.kv_incr("text", 1).await,
        Err(hippo::broker::KvError::NotAnInteger)
    ));
}
