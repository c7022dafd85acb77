//! Signature checks on the raw body: Stripe's `Stripe-Signature` and GitHub's
//! `X-Hub-Signature-256`, both HMAC-SHA256 compared in constant time.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far a Stripe signature's timestamp may be from now, either way: 5 minutes.
pub const STRIPE_TOLERANCE_SECS: i64 = 300;

type HmacSha256 = Hmac<Sha256>;

/// Why a signature was refused. Logged, never sent: the client always gets the same `400`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    /// No signature header.
    Missing,
    /// A header that is not in the provider's format.
    Malformed,
    /// A Stripe timestamp more than [`STRIPE_TOLERANCE_SECS`] away from now.
    Expired,
    /// No signature matches the body.
    Mismatch,
}

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SignatureError::Missing => "signature header missing",
            SignatureError::Malformed => "signature header malformed",
            SignatureError::Expired => "signature timestamp outside the tolerance",
            SignatureError::Mismatch => "signature does not match the body",
        })
    }
}

/// Checks a `Stripe-Signature` header (`t=<unix secs>,v1=<hex>[,v1=<hex>..]`): some `v1` must
/// be the HMAC-SHA256 of `"{t}.{body}"` under `secret`, compared in constant time, and `t` must
/// be within [`STRIPE_TOLERANCE_SECS`] of `now_secs`. Other schemes (`v0`) are ignored.
///
/// # Errors
/// Why the header was refused.
pub fn verify_stripe(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now_secs: i64,
) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for item in header.split(',') {
        match item.trim().split_once('=') {
            Some(("t", value)) => timestamp = Some(value),
            Some(("v1", value)) => signatures.push(value),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    let seconds: i64 = timestamp.parse().map_err(|_| SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let mut mac = HmacSha256::new_from_slice(secret).map_err(|_| SignatureError::Mismatch)?;
    // The signed payload uses the timestamp exactly as sent.
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let matches = signatures
        .iter()
        .filter_map(|signature| hex::decode(signature).ok())
        .any(|signature| mac.clone().verify_slice(&signature).is_ok());
    if !matches {
        return Err(SignatureError::Mismatch);
    }
    if now_secs.abs_diff(seconds) > STRIPE_TOLERANCE_SECS.unsigned_abs() {
        return Err(SignatureError::Expired);
    }
    Ok(())
}

/// Checks an `X-Hub-Signature-256` header (`sha256=<hex>`): the HMAC-SHA256 of the body under
/// `secret`, compared in constant time.
///
/// # Errors
/// Why the header was refused.
pub fn verify_github(secret: &[u8], header: &str, body: &[u8]) -> Result<(), SignatureError> {
    let signature = header
        .trim()
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed)?;
    let signature = hex::decode(signature).map_err(|_| SignatureError::Malformed)?;
    let mut mac = HmacSha256::new_from_slice(secret).map_err(|_| SignatureError::Mismatch)?;
    mac.update(body);
    mac.verify_slice(&signature)
        .map_err(|_| SignatureError::Mismatch)
}
