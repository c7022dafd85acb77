//! What the fuzz targets share: how an input splits into fields, and what a refusal must look
//! like.
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

/// A `200`, or a refusal with one of the `allowed` statuses in the standard error shape.
pub fn assert_answered_or_refused(response: &arbor::test::TestResponse, allowed: &[u16]) {
    let status = response.status().as_u16();
    if status == 200 {
        return;
    }
    assert!(
        allowed.contains(&status),
        "status {status}: {}",
        response.text()
    );
    let body: serde_json::Value = serde_json::from_slice(response.bytes())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", response.text()));
    assert!(
        body["error"].is_string() && body["message"].is_string(),
        "{body}"
    );
}
