//! Compile-time behaviour of `#[arbor::handler]` and `arbor::middleware!`: what expands, and
//! what each mistake reports. One test fn, so trybuild builds the cases once.
//!
//! Re-bless the `.stderr` snapshots with `TRYBUILD=overwrite cargo test -p arbor-macros --test ui`
//! and read every one: it must read like rustc and point at the token the user wrote.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
