//! Conditional requests on versioned resources (posts): the strong `ETag` of a version,
//! `If-None-Match` for reads (`304` when the client's copy is current) and `If-Match` for
//! writes (optimistic locking: the version the client read).

use arbor::http::{header, HeaderMap, HeaderValue, StatusCode};
use arbor::ApiError;

/// The strong `ETag` of a resource version: `"3"`.
pub fn etag(version: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// Whether the request's `If-None-Match` names `tag` (weakly compared: `W/"3"` matches `"3"`),
/// or is `*`: the client's copy is current and a `GET` can answer `304`.
pub fn none_match_fails(headers: &HeaderMap, tag: &HeaderValue) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == "*" || t.trim().trim_start_matches("W/") == tag)
        })
}

/// The version in `If-Match` (`"3"`, `W/"3"` or `3`).
///
/// # Errors
/// `428 PRECONDITION_REQUIRED` without the header; `400` if it is not such a version.
pub fn expected_version(headers: &HeaderMap) -> Result<i64, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Err(ApiError::new(
            StatusCode::PRECONDITION_REQUIRED,
            "PRECONDITION_REQUIRED",
            "If-Match header required for updates: send the ETag you read",
        ));
    };
    value
        .to_str()
        .ok()
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|v| v.parse::<i64>().ok())
        .ok_or_else(|| ApiError::bad_request("If-Match must be an ETag such as \"3\""))
}

#[cfg(test)]
mod tests {
    use arbor::http::{header, HeaderMap, HeaderValue};

    use super::{etag, expected_version, none_match_fails};

    fn headers(name: header::HeaderName, value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn if_none_match_compares_weakly_and_accepts_lists_and_star() {
        let tag = etag(3);
        assert_eq!(tag, "\"3\"");
        for matching in ["\"3\"", "W/\"3\"", "\"1\", \"3\"", "*"] {
            assert!(
                none_match_fails(&headers(header::IF_NONE_MATCH, matching), &tag),
                "{matching}"
            );
        }
        for other in ["\"4\"", "3", "W/\"30\""] {
            assert!(
                !none_match_fails(&headers(header::IF_NONE_MATCH, other), &tag),
                "{other}"
            );
        }
        assert!(!none_match_fails(&HeaderMap::new(), &tag));
    }

    #[test]
    fn if_match_names_the_version() {
        for (value, version) in [("\"3\"", 3), ("W/\"3\"", 3), ("3", 3), (" \"12\" ", 12)] {
            assert_eq!(
                expected_version(&headers(header::IF_MATCH, value)).ok(),
                Some(version),
                "{value}"
            );
        }
        let missing = expected_version(&HeaderMap::new()).unwrap_err();
        assert_eq!(missing.status().as_u16(), 428);
        let bad = expected_version(&headers(header::IF_MATCH, "\"abc\"")).unwrap_err();
        assert_eq!(bad.status().as_u16(), 400);
    }
}
