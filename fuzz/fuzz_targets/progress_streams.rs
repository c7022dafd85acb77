//! Progress streams carry every step and the result (or the error) intact, whatever their
//! messages. Fields: the result (its first byte odd: the work fails with it), then up to six
//! steps, each a percentage byte and a message (none when empty).
#![no_main]

use std::sync::LazyLock;

use arbor_fuzz::{fields, oracles};
use libfuzzer_sys::fuzz_target;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(arbor_fuzz::runtime);

fuzz_target!(|data: &[u8]| {
    let parts = fields(data, 7);
    let fails = parts[0].first().is_some_and(|byte| byte % 2 == 1);
    let result = String::from_utf8_lossy(parts[0]).into_owned();
    let steps: Vec<(u8, Option<String>)> = parts[1..]
        .iter()
        .filter(|step| !step.is_empty())
        .map(|step| {
            let message = String::from_utf8_lossy(&step[1..]).into_owned();
            (step[0] % 101, (!message.is_empty()).then_some(message))
        })
        .collect();
    RUNTIME.block_on(oracles::progress_intact(steps, result, fails));
});
