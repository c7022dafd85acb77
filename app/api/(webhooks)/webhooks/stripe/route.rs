//! `POST /api/webhooks/stripe`: a Stripe event, its `Stripe-Signature` already checked by the
//! `(webhooks)` folder middleware.

pub use crate::webhooks::receive as POST;
