//! Stripe deliveries must carry a valid `Stripe-Signature`; `404` while Stripe is not served.

arbor::middleware!(arbor::webhooks::verify_registered("stripe"));
