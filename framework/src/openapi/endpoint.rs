//! The document on the main port: answered ahead of the routes and the request metrics, from
//! the string serialized once.

use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;
use http::{header, HeaderValue, Method};
use tower::{Layer, Service};

use super::OpenApi;

/// Answers `GET`/`HEAD` on [`OpenApi::served_at`] (installed by [`crate::App::openapi`]).
#[derive(Debug, Clone)]
pub(crate) struct ServeOpenApiLayer(pub(crate) OpenApi);

impl<S> Layer<S> for ServeOpenApiLayer {
    type Service = ServeOpenApi<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ServeOpenApi {
            inner,
            document: self.0.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct ServeOpenApi<S> {
    inner: S,
    document: OpenApi,
}

impl<S> Service<Request> for ServeOpenApi<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<std::future::Ready<Result<Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let asked = matches!(*request.method(), Method::GET | Method::HEAD)
            && self.document.served_at() == Some(request.uri().path());
        if asked {
            let response = (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                self.document.json.clone(),
            )
                .into_response();
            return Either::Left(std::future::ready(Ok(response)));
        }
        Either::Right(self.inner.call(request))
    }
}
