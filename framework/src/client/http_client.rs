//! [`HttpClient`]: typed calls to another Arbor service over HTTP/1.1 (hyper's pooled client,
//! keep-alive connections reused).

use std::marker::PhantomData;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::{
    BodyOf, CallError, ClientArguments, ClientResponse, DecodeError, ErrorBody, Operations,
    ParamsOf, Prepared, QueryOf, ShapeOf, Signature,
};

/// How long a call may take, connection included, unless [`HttpClient::timeout`] says.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest answer read, unless [`HttpClient::max_response_bytes`] says.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Calls the operations of one Arbor service at a base URL, typed by the service's handlers:
///
/// ```no_run
/// # async fn example() -> Result<(), arbor::client::ClientError> {
/// use arbor::client::{HttpClient, Operation, Operations};
/// use arbor::Json;
///
/// pub async fn hello() -> Json<String> {
///     Json("hello".into())
/// }
/// // Generated for a real app: `routes::OPERATIONS`.
/// static OPERATIONS: Operations = Operations::new(&[Operation::new("GET", "/api/hello", || {
///     arbor::client::type_id_of(&hello)
/// })]);
///
/// let client = HttpClient::new("http://127.0.0.1:3000", &OPERATIONS)?;
/// let greeting: String = client.call(hello, (), ()).send().await?.body;
/// # Ok(()) }
/// ```
///
/// Clones share the connection pool.
#[derive(Debug, Clone)]
pub struct HttpClient {
    /// `http://host:port` and any prefix, without a trailing `/`: each call appends its path.
    base: String,
    operations: &'static Operations,
    inner: Client<HttpConnector, Full<Bytes>>,
    default_headers: HeaderMap,
    timeout: Duration,
    max_response_bytes: usize,
}

impl HttpClient {
    /// A client of the service at `base_url` (`http://host:port`, with an optional path prefix
    /// before the routes' own), whose operations are `operations`.
    ///
    /// # Errors
    /// When `base_url` is not an absolute `http` URL.
    pub fn new(base_url: &str, operations: &'static Operations) -> Result<Self, ClientError> {
        let base = base_url.trim_end_matches('/');
        let uri: Uri = base
            .parse()
            .map_err(|_| ClientError::BaseUrl(base_url.to_owned()))?;
        if uri.scheme_str() != Some("http") || uri.authority().is_none() || uri.query().is_some() {
            return Err(ClientError::BaseUrl(base_url.to_owned()));
        }
        Ok(Self {
            base: base.to_owned(),
            operations,
            inner: Client::builder(TokioExecutor::new()).build_http(),
            default_headers: HeaderMap::new(),
            timeout: DEFAULT_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        })
    }

    /// Sends `name: value` on every call (an API key, a tracing header).
    pub fn default_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.default_headers.insert(name, value);
        self
    }

    /// Sends `Authorization: Bearer <token>` on every call.
    ///
    /// # Errors
    /// When the token is not a valid header value.
    pub fn bearer_auth(self, token: &str) -> Result<Self, ClientError> {
        let value = HeaderValue::try_from(format!("Bearer {token}"))
            .map_err(|_| ClientError::Header("authorization".to_owned()))?;
        Ok(self.default_header(header::AUTHORIZATION, value))
    }

    /// Gives each call at most `timeout`, connecting included.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Refuses answers larger than `bytes`.
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// A call of `handler` with its path parameters and body (see the [module docs](super)).
    pub fn call<H, Arguments>(
        &self,
        handler: H,
        params: ParamsOf<Arguments>,
        body: BodyOf<Arguments>,
    ) -> HttpCall<'_, H::Output, QueryOf<Arguments>>
    where
        H: Signature<Arguments> + 'static,
        Arguments: ClientArguments,
    {
        let prepared =
            Prepared::new::<H, ShapeOf<Arguments>>(self.operations, &handler, &params, &body)
                .map_err(ClientError::Call);
        HttpCall {
            client: self,
            prepared,
            headers: HeaderMap::new(),
            types: PhantomData,
        }
    }
}

/// A call being built; [`send`](Self::send) makes it.
#[derive(Debug)]
#[must_use = "a call does nothing until it is sent"]
pub struct HttpCall<'c, Output, Query> {
    client: &'c HttpClient,
    prepared: Result<Prepared, ClientError>,
    headers: HeaderMap,
    types: PhantomData<fn() -> (Output, Query)>,
}

impl<Output, Query: serde::Serialize> HttpCall<'_, Output, Query> {
    /// Sets the query string (the handler's `Query<T>`).
    pub fn query(mut self, query: &Query) -> Self {
        if let Ok(prepared) = &mut self.prepared {
            if let Err(error) = prepared.set_query(query) {
                self.prepared = Err(ClientError::Call(error));
            }
        }
        self
    }

    /// Adds a header to this call.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// Makes the call: the decoded answer on success (a `2xx`), else the error answer.
    ///
    /// # Errors
    /// [`ClientError::Api`] for an error answer, and the call's other failures.
    pub async fn send(self) -> Result<Answer<Output::Body>, ClientError>
    where
        Output: ClientResponse,
    {
        let response = self.send_untyped().await?;
        let (parts, bytes) = response.into_parts();
        if !parts.status.is_success() {
            return Err(ClientError::Api {
                status: parts.status,
                body: ErrorBody::read(parts.status, &bytes),
            });
        }
        let body = Output::decode(&bytes).map_err(|error| ClientError::Decode {
            status: parts.status,
            error,
        })?;
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// Makes the call and hands back the whole answer, whatever its status.
    ///
    /// # Errors
    /// When the call cannot be made or its answer read.
    pub async fn send_untyped(self) -> Result<http::Response<Bytes>, ClientError> {
        let prepared = self.prepared?;
        let client = self.client;
        let uri = format!("{}{}", client.base, prepared.path_and_query());
        let mut request = http::Request::builder()
            .method(prepared.method)
            .uri(&uri)
            .body(Full::new(prepared.body))
            .map_err(|_| ClientError::BaseUrl(uri.clone()))?;
        let headers = request.headers_mut();
        headers.extend(client.default_headers.clone());
        headers.extend(self.headers);
        if let Some(content_type) = prepared.content_type {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
        headers
            .entry(header::ACCEPT)
            .or_insert(HeaderValue::from_static("application/json"));
        let limit = client.max_response_bytes;
        let exchange = async {
            let response = client
                .inner
                .request(request)
                .await
                .map_err(|e| ClientError::Transport(Box::new(e)))?;
            let (parts, body) = response.into_parts();
            let bytes = Limited::new(body, limit)
                .collect()
                .await
                .map_err(|e| match e.downcast::<http_body_util::LengthLimitError>() {
                    Ok(_) => ClientError::TooLarge(limit),
                    Err(e) => ClientError::Transport(e),
                })?
                .to_bytes();
            Ok(http::Response::from_parts(parts, bytes))
        };
        tokio::time::timeout(client.timeout, exchange)
            .await
            .map_err(|_| ClientError::Timeout(client.timeout))?
    }
}

/// A successful answer: its status, headers and decoded body.
#[derive(Debug, Clone)]
pub struct Answer<T> {
    /// The status (a `2xx`).
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body, of the handler's type.
    pub body: T,
}

/// Why a call failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// The base URL is not an absolute `http` URL.
    BaseUrl(String),
    /// A header value is not valid.
    Header(String),
    /// The call could not be made into a request.
    Call(CallError),
    /// The connection failed or broke.
    Transport(Box<dyn std::error::Error + Send + Sync>),
    /// No answer within the timeout.
    Timeout(Duration),
    /// The answer was larger than the limit.
    TooLarge(usize),
    /// The service answered with an error.
    Api {
        /// Its status.
        status: StatusCode,
        /// Its body, in the one error shape.
        body: ErrorBody,
    },
    /// A success answer was not of the handler's type.
    Decode {
        /// Its status.
        status: StatusCode,
        /// What did not fit.
        error: DecodeError,
    },
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BaseUrl(url) => write!(f, "`{url}` is not an absolute http URL"),
            Self::Header(name) => write!(f, "the `{name}` header value is not valid"),
            Self::Call(error) => error.fmt(f),
            Self::Transport(error) => write!(f, "the request failed: {error}"),
            Self::Timeout(timeout) => write!(f, "no answer within {timeout:?}"),
            Self::TooLarge(limit) => write!(f, "the answer is larger than {limit} bytes"),
            Self::Api { status, body } => {
                write!(f, "{status} {}: {}", body.error, body.message)
            }
            Self::Decode { status, error } => write!(f, "{status}: {error}"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Call(error) => Some(error),
            Self::Transport(error) => Some(&**error),
            Self::Decode { error, .. } => Some(error),
            _ => None,
        }
    }
}
