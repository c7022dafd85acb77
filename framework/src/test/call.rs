//! Typed calls in tests: [`TestClient::call`] checks the parameters, query and body against the
//! handler's own types at compile time (see [`arbor::client`](crate::client)).

use std::marker::PhantomData;
use std::ops::Deref;

use http::StatusCode;

use super::{TestClient, TestRequest, TestResponse, TestStream};
use crate::client::{
    BodyOf, ClientArguments, ClientResponse, ErrorBody, Operations, ParamsOf, Prepared, QueryOf,
    ShapeOf, Signature,
};

impl TestClient {
    /// Finds the handlers of [`call`](Self::call) in `operations`: the generated
    /// `routes::OPERATIONS` of the router under test.
    pub fn with_operations(mut self, operations: &'static Operations) -> Self {
        self.operations = Some(operations);
        self
    }

    /// A typed call of `handler` (a handler fn of the routes under test) with its path
    /// parameters and body: a call whose types are not the handler's does not compile.
    ///
    /// ```ignore
    /// let created = client
    ///     .call(routes::route_v1_users::POST, (), CreateUser { email, name, password })
    ///     .send()
    ///     .await;
    /// assert_eq!(created.status(), 201);
    /// let user: User = created.value();
    /// ```
    ///
    /// # Panics
    /// When no operations were given ([`with_operations`](Self::with_operations)), the
    /// handler is not among them, or no pattern of it takes `params`: mistakes in the test.
    pub fn call<H, Arguments>(
        &self,
        handler: H,
        params: ParamsOf<Arguments>,
        body: BodyOf<Arguments>,
    ) -> TestCall<H::Output, QueryOf<Arguments>>
    where
        H: Signature<Arguments> + 'static,
        Arguments: ClientArguments,
    {
        let operations = self.operations.unwrap_or_else(|| {
            panic!(
                "TestClient::call needs the routes' operations: \
                 `TestClient::new(router).with_operations(&routes::OPERATIONS)`"
            )
        });
        let prepared = Prepared::new::<H, ShapeOf<Arguments>>(operations, &handler, &params, &body)
            .unwrap_or_else(|error| panic!("{error}"));
        let mut request = self.request(prepared.method.clone(), &prepared.path);
        if let Some(content_type) = prepared.content_type {
            request = request.header("content-type", content_type);
        }
        request.body = prepared.body.clone();
        TestCall {
            request,
            prepared,
            types: PhantomData,
        }
    }
}

/// A typed call being built; [`send`](Self::send) runs it through the router.
#[derive(Debug)]
#[must_use = "a call does nothing until it is sent"]
pub struct TestCall<Output, Query> {
    request: TestRequest,
    prepared: Prepared,
    types: PhantomData<fn() -> (Output, Query)>,
}

impl<Output, Query: serde::Serialize> TestCall<Output, Query> {
    /// Sets the query string (the handler's `Query<T>`).
    ///
    /// # Panics
    /// If `query` cannot be encoded as a query string.
    pub fn query(mut self, query: &Query) -> Self {
        self.prepared
            .set_query(query)
            .unwrap_or_else(|error| panic!("{error}"));
        self.request.uri = self.prepared.path_and_query();
        self
    }

    /// Adds a header.
    ///
    /// # Panics
    /// If the name or value is not a valid header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.request = self.request.header(name, value);
        self
    }

    /// Sets `Authorization: Bearer <token>`.
    pub fn bearer_auth(mut self, token: &str) -> Self {
        self.request = self.request.bearer_auth(token);
        self
    }

    /// Runs the call and collects the whole answer.
    pub async fn send(self) -> TypedResponse<Output> {
        TypedResponse {
            response: self.request.send().await,
            output: PhantomData,
        }
    }

    /// Runs the call and hands back the answer as it streams (SSE, progress).
    pub async fn stream(self) -> TestStream {
        self.request.stream().await
    }
}

/// A collected answer of a typed call: a [`TestResponse`] that can also decode its body as the
/// handler's type.
#[derive(Debug, Clone)]
pub struct TypedResponse<Output> {
    response: TestResponse,
    output: PhantomData<fn() -> Output>,
}

impl<Output> Deref for TypedResponse<Output> {
    type Target = TestResponse;

    fn deref(&self) -> &TestResponse {
        &self.response
    }
}

impl<Output> TypedResponse<Output> {
    /// The error answer, in the one error shape.
    ///
    /// # Panics
    /// If the answer is a success.
    pub fn error(&self) -> ErrorBody {
        assert!(
            !self.status().is_success(),
            "expected an error answer, got {}: {}",
            self.status(),
            self.text()
        );
        ErrorBody::read(self.status(), self.bytes())
    }

    /// The plain [`TestResponse`].
    pub fn into_inner(self) -> TestResponse {
        self.response
    }
}

impl<Output: ClientResponse> TypedResponse<Output> {
    /// The body, as the handler's type.
    ///
    /// # Panics
    /// If the answer is not a success, or its body not of that type, showing the body.
    pub fn value(&self) -> Output::Body {
        let status: StatusCode = self.status();
        assert!(
            status.is_success(),
            "expected a success, got {status}: {}",
            self.text()
        );
        Output::decode(self.bytes()).unwrap_or_else(|error| panic!("{error}: {}", self.text()))
    }
}
