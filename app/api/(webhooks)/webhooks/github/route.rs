//! `POST /api/webhooks/github`: a GitHub delivery, verified by the folder middleware; a
//! redelivery keeps its `X-GitHub-Delivery` id.

pub use crate::webhooks::receive as POST;
