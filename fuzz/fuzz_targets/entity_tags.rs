//! `ETag`, `If-Match` and `If-None-Match`: an entity tag parses and prints back as itself, or is
//! refused; a tag list of any header values parses or is refused, never a panic. Fields: one
//! tag, then header values.
#![no_main]

use arbor::conditional::{EntityTag, TagList};
use arbor_fuzz::fields;
use http::HeaderValue;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parts = fields(data, 4);
    if let Ok(text) = std::str::from_utf8(parts[0]) {
        if let Ok(tag) = text.parse::<EntityTag>() {
            assert_eq!(tag.to_string(), text);
        }
    }
    let values: Vec<HeaderValue> = parts[1..]
        .iter()
        .filter_map(|bytes| HeaderValue::from_bytes(bytes).ok())
        .collect();
    if let Ok(list) = TagList::parse(&values) {
        let _ = format!("{list:?}");
    }
});
