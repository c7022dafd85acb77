//! GitHub deliveries must carry a valid `X-Hub-Signature-256`; `404` while GitHub is not served.

arbor::middleware!(arbor::webhooks::verify_registered("github"));
