//! The three webhook signature schemes refuse whatever signature headers they are sent (with no
//! secret, nobody can sign), without a panic. Fields: header value one to three, body.
#![no_main]

use std::time::SystemTime;

use arbor::webhooks::{GitHub, StandardWebhooks, Stripe, WebhookVerifier};
use arbor_fuzz::fields;
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

fn headers(pairs: &[(&'static str, &[u8])]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    headers
}

fuzz_target!(|data: &[u8]| {
    let [first, second, third, body] = fields(data, 4)[..] else {
        unreachable!()
    };
    let now = SystemTime::now();
    let stripe = Stripe::new("whsec_fuzz");
    assert!(stripe
        .verify(&headers(&[("stripe-signature", first)]), body, now)
        .is_err());
    let github = GitHub::new("fuzz");
    assert!(github
        .verify(&headers(&[("x-hub-signature-256", first)]), body, now)
        .is_err());
    let standard = StandardWebhooks::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    let sent = headers(&[
        ("webhook-id", first),
        ("webhook-timestamp", second),
        ("webhook-signature", third),
    ]);
    assert!(standard.verify(&sent, body, now).is_err());
});
