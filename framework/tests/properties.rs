//! Property tests: what reads client input never panics, refuses what it cannot read with the
//! documented status, and round-trips what it accepts. proptest runs on stable, so these run
//! in the test command; its failures are shrunk and kept in `proptest-regressions/`.
//!
//! Covered: entity tags and `If-Match`/`If-None-Match` lists, the three webhook signature
//! schemes, the SSE and progress-stream encoders, the path, query, JSON and form extractors
//! through the app stack, and multipart uploads (whatever the body, a file is stored whole or
//! not at all).

#![allow(clippy::unwrap_used)]

#[path = "property_support/oracles.rs"]
mod oracles;
mod property_support;

use std::time::{SystemTime, UNIX_EPOCH};

use arbor::conditional::{EntityTag, TagList};
use arbor::sse::SseEvent;
use arbor::webhooks::{GitHub, StandardWebhooks, Stripe, WebhookVerifier};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName, HeaderValue};
use property_support::cases;
use proptest::prelude::*;
use sha2::Sha256;

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_bytes(name.as_bytes()).unwrap(), value);
        }
    }
    headers
}

/// `body` with the byte at `index` changed.
fn tampered(body: &[u8], index: prop::sample::Index) -> Vec<u8> {
    let mut body = body.to_vec();
    let at = index.index(body.len());
    body[at] ^= 0x01;
    body
}

const STANDARD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn entity_tags_parse_or_refuse_and_round_trip(text in ".{0,40}") {
        if let Ok(tag) = text.parse::<EntityTag>() {
            prop_assert_eq!(tag.to_string(), text);
        }
    }

    #[test]
    fn valid_entity_tags_are_accepted(weak: bool, opaque in "[!#-~\u{80}-\u{ff}]{0,24}") {
        let written = format!("{}\"{opaque}\"", if weak { "W/" } else { "" });
        let tag: EntityTag = written.parse().unwrap();
        prop_assert_eq!(tag.to_string(), written);
    }

    #[test]
    fn tag_lists_parse_or_refuse(values in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..4)) {
        let values: Vec<HeaderValue> = values
            .iter()
            .filter_map(|bytes| HeaderValue::from_bytes(bytes).ok())
            .collect();
        let _ = TagList::parse(&values);
    }

    #[test]
    fn stripe_refuses_arbitrary_signature_headers(header in ".{0,80}", body in prop::collection::vec(any::<u8>(), 0..64)) {
        let stripe = Stripe::new("whsec_test");
        let headers = headers(&[("stripe-signature", &header)]);
        prop_assert!(stripe.verify(&headers, &body, SystemTime::now()).is_err());
    }

    #[test]
    fn stripe_accepts_its_signature_and_refuses_any_changed_byte(
        body in prop::collection::vec(any::<u8>(), 1..128),
        flip: prop::sample::Index,
    ) {
        let secret = "whsec_test";
        let now = SystemTime::now();
        let t = now.duration_since(UNIX_EPOCH).unwrap().as_secs().to_string();
        let signature = hex::encode(hmac_sha256(secret.as_bytes(), &[t.as_bytes(), b".", &body]));
        let headers = headers(&[("stripe-signature", &format!("t={t},v1={signature}"))]);
        let stripe = Stripe::new(secret);
        prop_assert!(stripe.verify(&headers, &body, now).is_ok());
        prop_assert!(stripe.verify(&headers, &tampered(&body, flip), now).is_err());
    }

    #[test]
    fn github_refuses_arbitrary_signature_headers(header in ".{0,80}", body in prop::collection::vec(any::<u8>(), 0..64)) {
        let github = GitHub::new("secret");
        let headers = headers(&[("x-hub-signature-256", &header)]);
        prop_assert!(github.verify(&headers, &body, SystemTime::now()).is_err());
    }

    #[test]
    fn github_accepts_its_signature_and_refuses_any_changed_byte(
        body in prop::collection::vec(any::<u8>(), 1..128),
        flip: prop::sample::Index,
    ) {
        let signature = hex::encode(hmac_sha256(b"secret", &[&body]));
        let headers = headers(&[("x-hub-signature-256", &format!("sha256={signature}"))]);
        let github = GitHub::new("secret");
        prop_assert!(github.verify(&headers, &body, SystemTime::now()).is_ok());
        prop_assert!(github.verify(&headers, &tampered(&body, flip), SystemTime::now()).is_err());
    }

    #[test]
    fn standard_webhooks_refuse_arbitrary_headers(
        id in ".{0,20}",
        timestamp in ".{0,20}",
        signature in ".{0,80}",
        body in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let verifier = StandardWebhooks::new(STANDARD_SECRET).unwrap();
        let headers = headers(&[
            ("webhook-id", &id),
            ("webhook-timestamp", &timestamp),
            ("webhook-signature", &signature),
        ]);
        prop_assert!(verifier.verify(&headers, &body, SystemTime::now()).is_err());
    }

    #[test]
    fn standard_webhooks_accept_their_signature_and_refuse_any_changed_byte(
        id in "msg_[a-zA-Z0-9]{1,20}",
        body in prop::collection::vec(any::<u8>(), 1..128),
        flip: prop::sample::Index,
    ) {
        let key = base64::engine::general_purpose::STANDARD
            .decode(STANDARD_SECRET.trim_start_matches("whsec_"))
            .unwrap();
        let now = SystemTime::now();
        let timestamp = now.duration_since(UNIX_EPOCH).unwrap().as_secs().to_string();
        let signature = base64::engine::general_purpose::STANDARD.encode(hmac_sha256(
            &key,
            &[id.as_bytes(), b".", timestamp.as_bytes(), b".", &body],
        ));
        let headers = headers(&[
            ("webhook-id", &id),
            ("webhook-timestamp", &timestamp),
            ("webhook-signature", &format!("v1,{signature}")),
        ]);
        let verifier = StandardWebhooks::new(STANDARD_SECRET).unwrap();
        prop_assert!(verifier.verify(&headers, &body, now).is_ok());
        prop_assert!(verifier.verify(&headers, &tampered(&body, flip), now).is_err());
    }

    #[test]
    fn sse_events_are_one_frame_whatever_their_name_and_data(name in ".{0,20}", data in ".{0,60}") {
        match SseEvent::json(&name, &data) {
            Err(_) => prop_assert!(name.is_empty() || name.contains(['\n', '\r'])),
            Ok(event) => {
                let frame = std::str::from_utf8(event.as_bytes()).unwrap();
                // One event: a blank line only at its end, so no data can start another.
                prop_assert!(frame.ends_with("\n\n"));
                prop_assert_eq!(frame.matches("\n\n").count(), 1);
                prop_assert!(!frame.contains('\r'));
                let lines: Vec<&str> = frame.trim_end().lines().collect();
                prop_assert_eq!(lines.len(), 2);
                prop_assert_eq!(lines[0].strip_prefix("event: "), Some(name.as_str()));
                let sent: String = serde_json::from_str(lines[1].strip_prefix("data: ").unwrap()).unwrap();
                prop_assert_eq!(sent, data);
            }
        }
    }

    #[test]
    fn sse_comments_stay_on_one_line(text in ".{0,60}") {
        let comment = SseEvent::comment(&text);
        let frame = std::str::from_utf8(comment.as_bytes()).unwrap();
        prop_assert!(frame.starts_with(": "));
        prop_assert!(frame.ends_with("\n\n"));
        prop_assert_eq!(frame.matches('\n').count(), 2);
        prop_assert!(!frame.contains('\r'));
    }
}

proptest! {
    #![proptest_config(cases(128))]

    #[test]
    fn path_query_json_and_form_extractors_answer_every_input(
        segment in prop::collection::vec(any::<u8>(), 0..24),
        query in prop::collection::vec(any::<u8>(), 0..48),
        body in prop::collection::vec(any::<u8>(), 0..64),
        form_body in "[a-z=&%0-9+]{0,40}",
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let client = oracles::extractors();
            oracles::extractors_answer(&client, &segment, &query, &body, form_body.as_bytes()).await;
        });
    }
}

/// Pieces of multipart bodies, so that random bodies are often nearly right.
fn multipart_piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"--B\r\n".to_vec()),
        Just(b"--B--\r\n".to_vec()),
        Just(b"Content-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n".to_vec()),
        Just(b"Content-Disposition: form-data; name=\"note\"\r\n".to_vec()),
        Just(b"Content-Type: text/plain\r\n".to_vec()),
        Just(b"\r\n".to_vec()),
        prop::collection::vec(any::<u8>(), 0..600),
    ]
}

/// A well-formed upload of up to 1,500 bytes (over the 1,024 allowed at times), cut short at
/// some point or not; or pieces of multipart in any order.
fn multipart_body() -> impl Strategy<Value = Vec<u8>> {
    let well_formed = (
        prop::collection::vec(any::<u8>(), 0..1500),
        any::<bool>(),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(data, cut, at)| {
            let mut body = b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\n".to_vec();
            body.extend_from_slice(&data);
            body.extend_from_slice(b"\r\n--B--\r\n");
            if cut {
                body.truncate(at.index(body.len()));
            }
            body
        });
    let pieces = prop::collection::vec(multipart_piece(), 0..12).prop_map(|pieces| pieces.concat());
    prop_oneof![well_formed, pieces]
}

proptest! {
    #![proptest_config(cases(128))]

    #[test]
    fn an_upload_is_stored_whole_or_not_at_all(body in multipart_body()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(oracles::upload_whole_or_nothing(&body));
    }
}

proptest! {
    #![proptest_config(cases(64))]

    #[test]
    fn progress_streams_carry_every_step_and_the_result_intact(
        steps in prop::collection::vec((0u8..=100, prop::option::of(".{0,30}")), 0..6),
        result in ".{0,40}",
        fails: bool,
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(oracles::progress_intact(steps, result, fails));
    }
}
