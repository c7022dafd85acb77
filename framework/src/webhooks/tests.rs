//! The verifiers on their own: published vectors, rotation, tolerance, tampering, malformed
//! headers. The layer is tested over TCP in `framework/tests/webhooks.rs`.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue};

use super::*;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.append(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    headers
}

fn hmac_hex(key: &[u8], content: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(key).unwrap();
    mac.update(content);
    hex::encode(mac.finalize().into_bytes())
}

// ---------------------------------------------------------------------------------------------
// GitHub

/// <https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries>
const GITHUB_EXAMPLE: &str =
    "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

#[test]
fn github_matches_githubs_published_example() {
    let github = GitHub::new("It's a Secret to Everybody");
    let signed = headers(&[("x-hub-signature-256", GITHUB_EXAMPLE)]);
    let now = SystemTime::now();
    assert_eq!(github.verify(&signed, b"Hello, World!", now), Ok(()));
    assert_eq!(
        github.verify(&signed, b"Hello, World?", now),
        Err(SignatureError::Mismatch),
        "tampered body"
    );
    assert_eq!(
        GitHub::new("another secret").verify(&signed, b"Hello, World!", now),
        Err(SignatureError::Mismatch),
        "wrong secret"
    );
}

#[test]
fn github_accepts_either_secret_while_one_is_rolled() {
    let rolled = GitHub::new("new secret").secret("It's a Secret to Everybody");
    let signed = headers(&[("x-hub-signature-256", GITHUB_EXAMPLE)]);
    assert_eq!(
        rolled.verify(&signed, b"Hello, World!", SystemTime::now()),
        Ok(())
    );
    let new = format!("sha256={}", hmac_hex(b"new secret", b"Hello, World!"));
    assert_eq!(
        rolled.verify(
            &headers(&[("x-hub-signature-256", &new)]),
            b"Hello, World!",
            SystemTime::now()
        ),
        Ok(())
    );
}

#[test]
fn github_refuses_malformed_headers() {
    let github = GitHub::new("s");
    let now = SystemTime::now();
    assert_eq!(
        github.verify(&HeaderMap::new(), b"", now),
        Err(SignatureError::Missing)
    );
    for (case, value) in [
        ("no scheme", &GITHUB_EXAMPLE[7..]),
        ("sha1", "sha1=757107ea0eb2509fc211221cce984b8a37570b6d"),
        ("not hex", "sha256=zz"),
        ("empty", ""),
    ] {
        assert_eq!(
            github.verify(&headers(&[("x-hub-signature-256", value)]), b"", now),
            Err(SignatureError::Malformed),
            "{case}"
        );
    }
    // Truncated hex decodes, but matches nothing.
    assert_eq!(
        GitHub::new("It's a Secret to Everybody").verify(
            &headers(&[("x-hub-signature-256", &GITHUB_EXAMPLE[..41])]),
            b"Hello, World!",
            now
        ),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn an_empty_secret_never_matches() {
    let signature = format!("sha256={}", hmac_hex(b"", b"body"));
    // hmac accepts an empty key; the verifier must not.
    assert_eq!(
        GitHub::new("").verify(
            &headers(&[("x-hub-signature-256", &signature)]),
            b"body",
            SystemTime::now()
        ),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn github_identifies_by_its_delivery_headers() {
    let github = GitHub::new("s");
    let identity = github
        .identify(
            &headers(&[("x-github-delivery", "d-1"), ("x-github-event", "push")]),
            b"",
        )
        .unwrap();
    assert_eq!(
        identity,
        EventIdentity {
            id: "d-1".into(),
            event_type: "push".into()
        }
    );
    assert!(github
        .identify(&headers(&[("x-github-event", "push")]), b"")
        .is_err());
    assert!(github
        .identify(&headers(&[("x-github-delivery", "d-1")]), b"")
        .is_err());
}

// ---------------------------------------------------------------------------------------------
// Stripe

/// Computed outside Rust: `printf '%s' "1700000000.$BODY" | openssl dgst -sha256 -hmac
/// whsec_test_secret`.
const STRIPE_BODY: &str =
    r#"{"id":"evt_test_webhook","object":"event","type":"payment_intent.succeeded"}"#;
const STRIPE_V1: &str = "130dc37d5a27b1b232a61e4f2ff00ed245f498112c11e8b747aff3d0fb754056";
const STRIPE_T: u64 = 1_700_000_000;

fn stripe_header(value: &str) -> HeaderMap {
    headers(&[("stripe-signature", value)])
}

fn stripe_sign(secret: &str, t: u64, body: &str) -> String {
    hmac_hex(secret.as_bytes(), format!("{t}.{body}").as_bytes())
}

#[test]
fn stripe_matches_an_independently_computed_signature() {
    let stripe = Stripe::new("whsec_test_secret");
    let signed = stripe_header(&format!("t={STRIPE_T},v1={STRIPE_V1}"));
    assert_eq!(
        stripe.verify(&signed, STRIPE_BODY.as_bytes(), at(STRIPE_T)),
        Ok(())
    );
    assert_eq!(
        stripe.verify(
            &signed,
            STRIPE_BODY.replace("succeeded", "failed").as_bytes(),
            at(STRIPE_T)
        ),
        Err(SignatureError::Mismatch),
        "tampered body"
    );
    assert_eq!(
        Stripe::new("whsec_other").verify(&signed, STRIPE_BODY.as_bytes(), at(STRIPE_T)),
        Err(SignatureError::Mismatch),
        "wrong secret"
    );
    // The timestamp is signed: changing it breaks the signature.
    let moved = stripe_header(&format!("t={},v1={STRIPE_V1}", STRIPE_T + 1));
    assert_eq!(
        stripe.verify(&moved, STRIPE_BODY.as_bytes(), at(STRIPE_T)),
        Err(SignatureError::Mismatch)
    );
    let identity = stripe.identify(&HeaderMap::new(), STRIPE_BODY.as_bytes());
    assert_eq!(
        identity,
        Ok(EventIdentity {
            id: "evt_test_webhook".into(),
            event_type: "payment_intent.succeeded".into()
        })
    );
}

#[test]
fn stripe_tolerance_is_five_minutes_either_way_by_default() {
    let stripe = Stripe::new("whsec_test_secret");
    let signed = stripe_header(&format!("t={STRIPE_T},v1={STRIPE_V1}"));
    let body = STRIPE_BODY.as_bytes();
    for (now, expected) in [
        (STRIPE_T + 300, Ok(())),
        (STRIPE_T - 300, Ok(())),
        (STRIPE_T + 301, Err(SignatureError::Expired)),
        (STRIPE_T - 301, Err(SignatureError::Expired)),
    ] {
        assert_eq!(stripe.verify(&signed, body, at(now)), expected, "at {now}");
    }
    let lenient = stripe.tolerance(Duration::from_secs(3600));
    assert_eq!(lenient.verify(&signed, body, at(STRIPE_T + 3600)), Ok(()));
    assert_eq!(
        lenient.verify(&signed, body, at(STRIPE_T + 3601)),
        Err(SignatureError::Expired)
    );
}

#[test]
fn stripe_accepts_any_v1_and_any_secret_during_a_roll() {
    let body = STRIPE_BODY;
    let old = stripe_sign("whsec_old", STRIPE_T, body);
    // Stripe sends one v1 per secret, in any order, beside schemes we ignore.
    let rolled = stripe_header(&format!("t={STRIPE_T},v1={old},v1={STRIPE_V1},v0=ignored"));
    assert_eq!(
        Stripe::new("whsec_test_secret").verify(&rolled, body.as_bytes(), at(STRIPE_T)),
        Ok(())
    );
    let reordered = stripe_header(&format!("v1={old}, t={STRIPE_T}"));
    // The receiver knows both secrets: the old signature alone is enough.
    let both = Stripe::new("whsec_test_secret").secret("whsec_old");
    assert_eq!(
        both.verify(&reordered, body.as_bytes(), at(STRIPE_T)),
        Ok(())
    );
    assert_eq!(
        Stripe::new("whsec_test_secret").verify(&reordered, body.as_bytes(), at(STRIPE_T)),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn stripe_refuses_malformed_headers() {
    let stripe = Stripe::new("whsec_test_secret");
    let body = STRIPE_BODY.as_bytes();
    let now = at(STRIPE_T);
    assert_eq!(
        stripe.verify(&HeaderMap::new(), body, now),
        Err(SignatureError::Missing)
    );
    for (case, value) in [
        ("garbage", "garbage".to_owned()),
        ("no timestamp", format!("v1={STRIPE_V1}")),
        ("no v1", format!("t={STRIPE_T}")),
        ("only v0", format!("t={STRIPE_T},v0={STRIPE_V1}")),
        ("timestamp not a number", format!("t=soon,v1={STRIPE_V1}")),
        ("empty", String::new()),
    ] {
        assert_eq!(
            stripe.verify(&stripe_header(&value), body, now),
            Err(SignatureError::Malformed),
            "{case}"
        );
    }
    assert_eq!(
        stripe.verify(&stripe_header(&format!("t={STRIPE_T},v1=zz")), body, now),
        Err(SignatureError::Mismatch),
        "a v1 that is not hex matches nothing"
    );
    assert!(stripe.identify(&HeaderMap::new(), b"not json").is_err());
    assert!(stripe
        .identify(&HeaderMap::new(), br#"{"type":"charge.succeeded"}"#)
        .is_err());
    assert!(stripe
        .identify(&HeaderMap::new(), br#"{"id":"evt_1"}"#)
        .is_err());
}

// ---------------------------------------------------------------------------------------------
// Standard Webhooks

/// The specification's published test vector (also in every Standard Webhooks library).
const STANDARD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const STANDARD_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const STANDARD_TIMESTAMP: u64 = 1_614_265_330;
const STANDARD_BODY: &str = r#"{"test": 2432232314}"#;
const STANDARD_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

fn standard_headers(id: &str, timestamp: &str, signature: &str) -> HeaderMap {
    headers(&[
        ("webhook-id", id),
        ("webhook-timestamp", timestamp),
        ("webhook-signature", signature),
    ])
}

fn vector_headers() -> HeaderMap {
    standard_headers(
        STANDARD_ID,
        &STANDARD_TIMESTAMP.to_string(),
        STANDARD_SIGNATURE,
    )
}

#[test]
fn standard_webhooks_matches_the_specifications_test_vector() {
    let verifier = StandardWebhooks::new(STANDARD_SECRET).unwrap();
    let body = STANDARD_BODY.as_bytes();
    let now = at(STANDARD_TIMESTAMP);
    assert_eq!(verifier.verify(&vector_headers(), body, now), Ok(()));
    // The base64 alone is the same secret.
    let bare = StandardWebhooks::new(&STANDARD_SECRET["whsec_".len()..]).unwrap();
    assert_eq!(bare.verify(&vector_headers(), body, now), Ok(()));
    assert_eq!(
        verifier.verify(&vector_headers(), br#"{"test": 2432232315}"#, now),
        Err(SignatureError::Mismatch),
        "tampered body"
    );
    // The id and the timestamp are signed too.
    let other_id = standard_headers(
        "msg_other",
        &STANDARD_TIMESTAMP.to_string(),
        STANDARD_SIGNATURE,
    );
    assert_eq!(
        verifier.verify(&other_id, body, now),
        Err(SignatureError::Mismatch)
    );
    let other_time = standard_headers(
        STANDARD_ID,
        &(STANDARD_TIMESTAMP + 1).to_string(),
        STANDARD_SIGNATURE,
    );
    assert_eq!(
        verifier.verify(&other_time, body, now),
        Err(SignatureError::Mismatch)
    );
    let wrong = StandardWebhooks::new(&format!("whsec_{}", BASE64.encode([7u8; 24]))).unwrap();
    assert_eq!(
        wrong.verify(&vector_headers(), body, now),
        Err(SignatureError::Mismatch),
        "wrong secret"
    );
}

#[test]
fn standard_webhooks_tolerance_and_several_signatures() {
    let body = STANDARD_BODY.as_bytes();
    let verifier = StandardWebhooks::new(STANDARD_SECRET).unwrap();
    for (now, expected) in [
        (STANDARD_TIMESTAMP + 300, Ok(())),
        (STANDARD_TIMESTAMP - 300, Ok(())),
        (STANDARD_TIMESTAMP + 301, Err(SignatureError::Expired)),
        (STANDARD_TIMESTAMP - 301, Err(SignatureError::Expired)),
    ] {
        assert_eq!(
            verifier.verify(&vector_headers(), body, at(now)),
            expected,
            "at {now}"
        );
    }
    // A list: other versions and signatures under other secrets beside the matching one.
    let other = format!("v1,{}", BASE64.encode([1u8; 32]));
    let list = format!("v1a,c29tZXRoaW5n {other} {STANDARD_SIGNATURE}");
    let listed = standard_headers(STANDARD_ID, &STANDARD_TIMESTAMP.to_string(), &list);
    assert_eq!(
        verifier.verify(&listed, body, at(STANDARD_TIMESTAMP)),
        Ok(())
    );
    // Rotation on the receiving side: the new secret first, the old one still accepted.
    let rolled = StandardWebhooks::new(&format!("whsec_{}", BASE64.encode(b"a brand new secret")))
        .unwrap()
        .secret(STANDARD_SECRET)
        .unwrap();
    assert_eq!(
        rolled.verify(&vector_headers(), body, at(STANDARD_TIMESTAMP)),
        Ok(())
    );
}

#[test]
fn standard_webhooks_refuses_malformed_headers_and_secrets() {
    let verifier = StandardWebhooks::new(STANDARD_SECRET).unwrap();
    let body = STANDARD_BODY.as_bytes();
    let now = at(STANDARD_TIMESTAMP);
    let t = STANDARD_TIMESTAMP.to_string();
    let mut no_id = vector_headers();
    no_id.remove("webhook-id");
    assert_eq!(
        verifier.verify(&no_id, body, now),
        Err(SignatureError::Missing)
    );
    for (case, timestamp, signature) in [
        ("timestamp not a number", "soon", STANDARD_SIGNATURE),
        ("no version", t.as_str(), &STANDARD_SIGNATURE[3..]),
        ("only v1a", t.as_str(), "v1a,c29tZXRoaW5n"),
        ("not base64", t.as_str(), "v1,!!!"),
        ("empty", t.as_str(), ""),
    ] {
        assert_eq!(
            verifier.verify(
                &standard_headers(STANDARD_ID, timestamp, signature),
                body,
                now
            ),
            Err(SignatureError::Malformed),
            "{case}"
        );
    }
    assert_eq!(
        StandardWebhooks::new("whsec_not base64!").unwrap_err(),
        InvalidSecret
    );
    assert_eq!(StandardWebhooks::new("whsec_").unwrap_err(), InvalidSecret);
}

#[test]
fn standard_webhooks_reads_svix_headers_and_the_body_type() {
    let verifier = StandardWebhooks::new(STANDARD_SECRET)
        .unwrap()
        .named("clerk");
    assert_eq!(verifier.name(), "clerk");
    let svix = headers(&[
        ("svix-id", STANDARD_ID),
        ("svix-timestamp", &STANDARD_TIMESTAMP.to_string()),
        ("svix-signature", STANDARD_SIGNATURE),
    ]);
    assert_eq!(
        verifier.verify(&svix, STANDARD_BODY.as_bytes(), at(STANDARD_TIMESTAMP)),
        Ok(())
    );
    let identity = verifier
        .identify(&svix, br#"{"type":"user.created","data":{}}"#)
        .unwrap();
    assert_eq!(
        (identity.id.as_str(), identity.event_type.as_str()),
        (STANDARD_ID, "user.created")
    );
    // A body without a type is still an event, of no type.
    let identity = verifier.identify(&svix, b"plain text").unwrap();
    assert_eq!(identity.event_type, "");
}
