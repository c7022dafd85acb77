//! Compile-time behaviour of `#[arbor::handler]`, `arbor::middleware!` and typed calls
//! (`arbor::client`): what expands, and what each mistake reports.
//!
//! Re-bless the `.stderr` snapshots with `TRYBUILD=overwrite cargo test -p arbor-macros --test ui`
//! and read every one: it must read like rustc and point at the token the user wrote.

#[test]
fn ui() {
    // A few groups, each checked before the next (trybuild builds its dependencies once and
    // reuses them): when a case fails, its expected and actual output end the test's output,
    // which is the part a CI log that keeps only the tail shows.
    for (pass, glob) in [
        (true, "tests/ui/pass/*.rs"),
        (false, "tests/ui/fail/[a-f]*.rs"),
        (false, "tests/ui/fail/[g-m]*.rs"),
        (false, "tests/ui/fail/[n-z]*.rs"),
    ] {
        let cases = trybuild::TestCases::new();
        if pass {
            cases.pass(glob);
        } else {
            cases.compile_fail(glob);
        }
    }
}
