//! Every route in the `(auth)` group answers with `Cache-Control: no-store`; the group adds
//! nothing to the URL.

arbor::middleware!(crate::middleware::no_store);
