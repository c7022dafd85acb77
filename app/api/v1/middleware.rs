//! Every `/api/v1` route: cookie-authenticated mutations must come from this site (CSRF).

arbor::middleware!(arbor::csrf());
