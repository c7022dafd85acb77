//! `POST /api/webhooks/github`: a GitHub delivery, its `X-Hub-Signature-256` already checked by
//! the `(webhooks)` folder middleware; a redelivery keeps its `X-GitHub-Delivery` id.

pub use crate::webhooks::receive as POST;
