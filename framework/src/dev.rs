//! What a running app does for `cargo arbor dev`: while the last build of the code is broken,
//! it answers every request with that build's error, as Next.js's dev overlay does.
//!
//! `cargo arbor dev` keeps the last good server running when a build fails (so that clients see
//! no refused connection and the fix is served the moment it builds) and tells it about the
//! failure on its standard input: one line of JSON per build, the failure or `null`. With
//! `ARBOR_DEV` set, [`crate::App`] reads those lines and, while a failure stands, answers
//! `500 BUILD_FAILED` naming the file and line (an HTML page for browsers). Nothing of this runs
//! without `ARBOR_DEV`.

use std::io::BufRead;
use std::sync::{Arc, OnceLock, RwLock};
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::{Html, IntoResponse, Response};
use futures_util::future::Either;
use http::{header, HeaderValue, StatusCode};
use serde::Deserialize;

use crate::error::ApiError;

/// The environment variable `cargo arbor dev` sets for the servers it starts.
pub(crate) const ENV: &str = "ARBOR_DEV";

/// The failed build, as `cargo arbor dev` reports it.
#[derive(Debug, Deserialize)]
pub(crate) struct BuildFailure {
    /// The first error's message, such as ``mismatched types``.
    message: String,
    /// Where the first error is, relative to the crate root.
    file: Option<String>,
    line: Option<u32>,
    column: Option<u32>,
    /// The compiler's whole output for the errors, without colours.
    rendered: String,
}

impl BuildFailure {
    fn place(&self) -> Option<String> {
        let file = self.file.as_deref()?;
        Some(match (self.line, self.column) {
            (Some(line), Some(column)) => format!("{file}:{line}:{column}"),
            (Some(line), None) => format!("{file}:{line}"),
            _ => file.to_owned(),
        })
    }

    fn summary(&self) -> String {
        match self.place() {
            Some(place) => format!("the last build failed: {} ({place})", self.message),
            None => format!("the last build failed: {}", self.message),
        }
    }

    fn into_response(self: &Arc<Self>, wants_html: bool) -> Response {
        let mut response = if wants_html {
            let page = format!(
                "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
                 <title>Build failed</title><style>body{{font:15px/1.5 system-ui,sans-serif;\
                 margin:2rem;color:#222}}h1{{color:#b00020;font-size:1.3rem}}pre{{background:#\
                 1e1e1e;color:#eee;padding:1rem;overflow:auto;border-radius:6px}}</style></head>\
                 <body><h1>{}</h1><p>This server runs the last build that compiled; save a fix \
                 and <code>cargo arbor dev</code> serves it.</p><pre>{}</pre></body></html>",
                crate::openapi::reference::escape(&self.summary()),
                crate::openapi::reference::escape(&self.rendered),
            );
            (StatusCode::INTERNAL_SERVER_ERROR, Html(page)).into_response()
        } else {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "BUILD_FAILED",
                self.summary(),
            )
            .with_details(serde_json::json!({
                "file": self.file,
                "line": self.line,
                "column": self.column,
                "compiler": self.rendered,
            }))
            .into_response()
        };
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

type Current = Arc<RwLock<Option<Arc<BuildFailure>>>>;

/// The layer [`crate::App`] adds when `ARBOR_DEV` is set; `None` otherwise.
pub(crate) fn layer_from_env() -> Option<ShowBuildFailureLayer> {
    let enabled = std::env::var_os(ENV).is_some_and(|value| !value.is_empty() && value != "0");
    enabled.then(|| ShowBuildFailureLayer(current().clone()))
}

/// One reader of standard input per process, however many routers are built.
fn current() -> &'static Current {
    static CURRENT: OnceLock<Current> = OnceLock::new();
    CURRENT.get_or_init(|| {
        let current = Current::default();
        let written = current.clone();
        // A plain thread: standard input blocks, and it lives as long as the process.
        let spawned = std::thread::Builder::new()
            .name("arbor-dev-status".into())
            .spawn(move || {
                for line in std::io::stdin().lock().lines() {
                    let Ok(line) = line else { break };
                    let failure = match serde_json::from_str::<Option<BuildFailure>>(&line) {
                        Ok(failure) => failure.map(Arc::new),
                        Err(error) => {
                            tracing::warn!(%error, "cargo arbor dev sent an unreadable status");
                            continue;
                        }
                    };
                    *written.write().unwrap_or_else(|e| e.into_inner()) = failure;
                }
                // `cargo arbor dev` is gone (killed, not stopped: then it stops this server
                // first): nothing would restart or stop this server, and it holds the port.
                tracing::warn!("cargo arbor dev went away; exiting");
                std::process::exit(1);
            });
        if let Err(error) = spawned {
            tracing::warn!(%error, "build failures will not be shown: no thread to read them");
        }
        current
    })
}

/// Answers with the last build's failure while there is one; see the [module](self).
#[derive(Debug, Clone)]
pub(crate) struct ShowBuildFailureLayer(Current);

impl<S> tower::Layer<S> for ShowBuildFailureLayer {
    type Service = ShowBuildFailure<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ShowBuildFailure {
            inner,
            current: self.0.clone(),
        }
    }
}

/// See [`ShowBuildFailureLayer`].
#[derive(Debug, Clone)]
pub(crate) struct ShowBuildFailure<S> {
    inner: S,
    current: Current,
}

impl<S> tower::Service<Request> for ShowBuildFailure<S>
where
    S: tower::Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<std::future::Ready<Result<Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let failure = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match failure {
            Some(failure) => {
                let wants_html = request
                    .headers()
                    .get(header::ACCEPT)
                    .and_then(|accept| accept.to_str().ok())
                    .is_some_and(|accept| accept.contains("text/html"));
                Either::Left(std::future::ready(Ok(failure.into_response(wants_html))))
            }
            None => Either::Right(self.inner.call(request)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::{Layer, ServiceExt};

    fn failure() -> Arc<BuildFailure> {
        Arc::new(
            serde_json::from_str(
                r#"{"message":"mismatched types","file":"app/api/hello/route.rs","line":7,
                    "column":5,"rendered":"error[E0308]: mismatched types <here>"}"#,
            )
            .unwrap(),
        )
    }

    async fn answer(current: &Current, accept: &str) -> Response {
        let service =
            ShowBuildFailureLayer(current.clone()).layer(tower::service_fn(|_: Request| async {
                Ok::<_, std::convert::Infallible>("served".into_response())
            }));
        let request = Request::builder()
            .header(header::ACCEPT, accept)
            .body(axum::body::Body::empty())
            .unwrap();
        service.oneshot(request).await.unwrap()
    }

    async fn text(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_standing_failure_is_the_answer_and_its_end_serves_again() {
        let current = Current::default();
        assert_eq!(text(answer(&current, "*/*").await).await, "served");

        *current.write().unwrap() = Some(failure());
        let response = answer(&current, "application/json").await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body: serde_json::Value = serde_json::from_str(&text(response).await).unwrap();
        assert_eq!(body["error"], "BUILD_FAILED");
        assert_eq!(
            body["message"],
            "the last build failed: mismatched types (app/api/hello/route.rs:7:5)"
        );
        assert_eq!(body["details"]["line"], 7);

        let page = text(answer(&current, "text/html,*/*;q=0.8").await).await;
        assert!(page.contains("app/api/hello/route.rs:7:5"), "{page}");
        assert!(
            page.contains("&lt;here&gt;"),
            "the compiler's text is escaped: {page}"
        );

        *current.write().unwrap() = None;
        assert_eq!(text(answer(&current, "*/*").await).await, "served");
    }
}
