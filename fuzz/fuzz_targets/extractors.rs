//! The path, query, JSON and form extractors through the app stack: any input is answered, or
//! refused with a client-error status in the standard shape, never a 500 or a panic.
//! Fields: path segment, query, JSON body, form body.
#![no_main]

use std::sync::LazyLock;

use arbor::test::TestClient;
use arbor_fuzz::{fields, oracles};
use libfuzzer_sys::fuzz_target;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(arbor_fuzz::runtime);
static CLIENT: LazyLock<TestClient> = LazyLock::new(oracles::extractors);

fuzz_target!(|data: &[u8]| {
    let [segment, query, json, form] = fields(data, 4)[..] else {
        unreachable!()
    };
    RUNTIME.block_on(oracles::extractors_answer(
        &CLIENT, segment, query, json, form,
    ));
});
