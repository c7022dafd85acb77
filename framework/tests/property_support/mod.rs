//! Shared by the property tests of `arbor` and `arbor-build` (included with `#[path]`).

use proptest::test_runner::Config;

/// `default` cases per property, or `PROPTEST_CASES` of them for a long run:
/// `PROPTEST_CASES=100000 cargo test --release -p <crate> --test properties`.
pub(crate) fn cases(default: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default);
    Config::with_cases(cases)
}
