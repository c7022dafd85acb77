//! Every route in the `(webhooks)` group is a provider's webhook, named by its last URL segment.
//! Before any handler runs, `verify` answers `404` if that provider is not enabled and `400` if
//! the raw body is not signed with its secret, and otherwise hands the handler an
//! `Extension<VerifiedEvent>`. The group adds nothing to the URL.

arbor::middleware!(crate::webhooks::verify);
