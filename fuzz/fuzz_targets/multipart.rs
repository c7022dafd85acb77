//! Multipart uploads (boundary `B`, at most 1,024 bytes of `text/plain`): whatever the body, the
//! file is stored whole, or refused in the standard shape with nothing left in storage.
#![no_main]

use std::sync::LazyLock;

use arbor_fuzz::oracles;
use libfuzzer_sys::fuzz_target;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(arbor_fuzz::runtime);

fuzz_target!(|body: &[u8]| {
    RUNTIME.block_on(oracles::upload_whole_or_nothing(body));
});
