//! A real Redis for the tests: the test command's server (`ARBOR_TEST_REDIS_URL`), or one a
//! test starts and stops itself (`ARBOR_TEST_REDIS_SERVER`, else `redis-server` on the PATH).

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use arbor_redis::{RedisOptions, RedisStores};

mod own_redis;

pub use own_redis::OwnRedis;

/// The shared server's URL; `None` (the test is skipped) unless `ARBOR_REQUIRE_REDIS=1`.
pub fn redis_url() -> Option<String> {
    let url = std::env::var("ARBOR_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() && std::env::var("ARBOR_REQUIRE_REDIS").is_ok_and(|v| v == "1") {
        panic!("ARBOR_REQUIRE_REDIS=1 but ARBOR_TEST_REDIS_URL is not set");
    }
    if url.is_none() {
        eprintln!("note: ARBOR_TEST_REDIS_URL not set; Redis test skipped");
    }
    url
}

/// Stores on the shared server under a prefix of their own, so tests never see each other's
/// keys. Two calls with the same prefix are two instances of one app.
pub async fn instance(url: &str, prefix: &str) -> RedisStores {
    RedisStores::connect_with(url, RedisOptions::default().prefix(prefix))
        .await
        .unwrap()
}

/// A prefix no other test run uses.
pub fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("test:{test}:{nanos}")
}
