use std::time::{Duration, UNIX_EPOCH};

use axum::response::IntoResponse;
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};

use super::{version_conflict, EntityTag, Preconditions, UnmetPrecondition, Validators};

fn preconditions(method: Method, headers: &[(header::HeaderName, &str)]) -> Preconditions {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(name.clone(), HeaderValue::from_str(value).unwrap());
    }
    Preconditions::from_headers(&method, &map).unwrap()
}

fn current() -> Validators {
    Validators::new()
        .etag(EntityTag::version(3))
        .last_modified(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
}

fn outcome(p: &Preconditions, current: Option<&Validators>) -> u16 {
    match p.evaluate(current) {
        Ok(()) => 200,
        Err(UnmetPrecondition::NotModified(_)) => 304,
        Err(UnmetPrecondition::Failed) => 412,
    }
}

#[test]
fn if_none_match_compares_weakly_and_answers_304_for_reads_412_for_writes() {
    let now = current();
    for value in ["\"3\"", "W/\"3\"", "\"1\", \"3\"", "*"] {
        let get = preconditions(Method::GET, &[(header::IF_NONE_MATCH, value)]);
        assert_eq!(outcome(&get, Some(&now)), 304, "GET {value}");
        let head = preconditions(Method::HEAD, &[(header::IF_NONE_MATCH, value)]);
        assert_eq!(outcome(&head, Some(&now)), 304, "HEAD {value}");
        let put = preconditions(Method::PUT, &[(header::IF_NONE_MATCH, value)]);
        assert_eq!(outcome(&put, Some(&now)), 412, "PUT {value}");
    }
    for value in ["\"4\"", "W/\"30\""] {
        let get = preconditions(Method::GET, &[(header::IF_NONE_MATCH, value)]);
        assert_eq!(outcome(&get, Some(&now)), 200, "{value}");
    }
    // `If-None-Match: *` on a resource that does not exist: "create only if absent" holds.
    let create = preconditions(Method::PUT, &[(header::IF_NONE_MATCH, "*")]);
    assert_eq!(outcome(&create, None), 200);
}

#[test]
fn if_match_compares_strongly() {
    let now = current();
    let cases = [
        ("\"3\"", 200),
        ("\"2\", \"3\"", 200),
        ("*", 200),
        ("W/\"3\"", 412),
        ("\"2\"", 412),
    ];
    for (value, status) in cases {
        let put = preconditions(Method::PUT, &[(header::IF_MATCH, value)]);
        assert_eq!(outcome(&put, Some(&now)), status, "{value}");
    }
    let missing = preconditions(Method::PUT, &[(header::IF_MATCH, "*")]);
    assert_eq!(outcome(&missing, None), 412);
}

#[test]
fn dates_are_compared_in_whole_seconds_and_only_without_the_tag_headers() {
    let now = current();
    let same = "Tue, 14 Nov 2023 22:13:20 GMT"; // 1_700_000_000
    let before = "Tue, 14 Nov 2023 22:13:19 GMT";
    let get = |headers: &[(header::HeaderName, &str)]| preconditions(Method::GET, headers);
    assert_eq!(
        outcome(&get(&[(header::IF_MODIFIED_SINCE, same)]), Some(&now)),
        304
    );
    assert_eq!(
        outcome(&get(&[(header::IF_MODIFIED_SINCE, before)]), Some(&now)),
        200
    );
    // If-None-Match present: If-Modified-Since is ignored.
    let both = get(&[
        (header::IF_NONE_MATCH, "\"9\""),
        (header::IF_MODIFIED_SINCE, same),
    ]);
    assert_eq!(outcome(&both, Some(&now)), 200);
    // Not a GET: If-Modified-Since is ignored.
    let put = preconditions(Method::PUT, &[(header::IF_MODIFIED_SINCE, same)]);
    assert_eq!(outcome(&put, Some(&now)), 200);
    let put = |value| preconditions(Method::PUT, &[(header::IF_UNMODIFIED_SINCE, value)]);
    assert_eq!(outcome(&put(same), Some(&now)), 200);
    assert_eq!(outcome(&put(before), Some(&now)), 412);
    // A malformed date is ignored, not refused.
    assert_eq!(outcome(&put("yesterday"), Some(&now)), 200);
    // If-Match present: If-Unmodified-Since is ignored.
    let both = preconditions(
        Method::PUT,
        &[
            (header::IF_MATCH, "\"3\""),
            (header::IF_UNMODIFIED_SINCE, before),
        ],
    );
    assert_eq!(outcome(&both, Some(&now)), 200);
}

#[test]
fn malformed_tag_lists_are_refused_with_400() {
    for (name, value) in [(header::IF_MATCH, "3"), (header::IF_NONE_MATCH, "\"1\", *")] {
        let mut headers = HeaderMap::new();
        headers.insert(name.clone(), HeaderValue::from_static(value));
        let error = Preconditions::from_headers(&Method::PUT, &headers).unwrap_err();
        assert_eq!(error.status(), StatusCode::BAD_REQUEST, "{name}: {value}");
        assert_eq!(error.code(), "INVALID_PRECONDITION");
    }
}

#[test]
fn expected_version_is_required_strong_and_single() {
    let version = |value: Option<&str>| {
        let headers: Vec<_> = value.map(|v| (header::IF_MATCH, v)).into_iter().collect();
        preconditions(Method::PATCH, &headers).expected_version()
    };
    assert_eq!(version(Some("\"7\"")).unwrap(), 7);
    let status = |value| version(value).unwrap_err().status().as_u16();
    assert_eq!(status(None), 428);
    assert_eq!(status(Some("W/\"7\"")), 412);
    assert_eq!(status(Some("*")), 412);
    assert_eq!(status(Some("\"abc\"")), 412);
    assert_eq!(status(Some("\"1\", \"2\"")), 400);
}

#[test]
fn require_accepts_either_write_precondition() {
    let put = |headers: &[(header::HeaderName, &str)]| preconditions(Method::PUT, headers);
    assert_eq!(put(&[]).require().unwrap_err().status().as_u16(), 428);
    assert!(put(&[(header::IF_MATCH, "\"1\"")]).require().is_ok());
    let date = "Tue, 14 Nov 2023 22:13:20 GMT";
    assert!(put(&[(header::IF_UNMODIFIED_SINCE, date)])
        .require()
        .is_ok());
}

#[tokio::test]
async fn not_modified_has_validators_and_no_body_whichever_way_it_is_answered() {
    use http_body_util::BodyExt;
    let unmet = UnmetPrecondition::NotModified(current());
    for response in [
        unmet.clone().into_response(),
        unmet.into_api_error().into_response(),
    ] {
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(response.headers()[header::ETAG], "\"3\"");
        assert_eq!(
            response.headers()[header::LAST_MODIFIED],
            "Tue, 14 Nov 2023 22:13:20 GMT"
        );
        assert!(response.headers().get(header::CONTENT_TYPE).is_none());
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert!(body.is_empty());
    }
}

#[tokio::test]
async fn version_conflict_is_the_guides_409() {
    use http_body_util::BodyExt;
    let response = version_conflict(5).into_response();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(response.headers()[header::ETAG], "\"5\"");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"], "CONFLICT");
    assert_eq!(body["details"]["currentVersion"], 5);
}
