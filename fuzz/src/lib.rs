//! What the fuzz targets share: how an input splits into fields, and the promises they check,
//! which are the property tests' own (`oracles`, one file for both).
//!
//! Inputs are plain bytes with fields separated by NUL, so that the seeds in `corpus/` can be
//! written (and read) by hand: `/items/1\0page=2\0{"name":"a","count":1}`.

/// The first `count - 1` NUL-separated fields of `data`, then the rest as the last one; missing
/// fields are empty.
pub fn fields(data: &[u8], count: usize) -> Vec<&[u8]> {
    let mut fields: Vec<&[u8]> = data.splitn(count, |&byte| byte == 0).collect();
    fields.resize(count, &[]);
    fields
}

/// A current-thread runtime for the targets that go through the app stack.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// The property tests' promises (`framework/tests/property_support/oracles.rs`).
#[path = "../../framework/tests/property_support/oracles.rs"]
pub mod oracles;

/// The property test's promise about route trees (`build-support/tests/support/route_tree.rs`).
#[path = "../../build-support/tests/support/route_tree.rs"]
pub mod route_tree;
