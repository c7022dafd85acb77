//! `POST /api/webhooks/stripe`: a Stripe event, verified by the folder middleware.

pub use crate::webhooks::receive as POST;
