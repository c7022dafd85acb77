//! The document on the main port: answered ahead of the routes and the request metrics, from
//! the string serialized once.

use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue};

use super::OpenApi;
use crate::service::Endpoint;

/// Answered on [`OpenApi::served_at`] (installed by [`crate::App::openapi`] as an
/// [`crate::service::EndpointLayer`]).
impl Endpoint for OpenApi {
    fn path(&self) -> Option<&str> {
        self.served_at()
    }

    fn answer(&self) -> Response {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            self.json.clone(),
        )
            .into_response()
    }
}
