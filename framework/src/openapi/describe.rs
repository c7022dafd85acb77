//! What a handler's types tell the contract, read from the handler fn itself.
//!
//! Generated code cannot name the types of a handler's arguments (they are written in the
//! route file, under its imports), but the fn item has them: [`arguments`] and [`output`]
//! infer them from its `FnOnce` signature, as axum's `Handler` impls do, into a [`Probe`].
//! Each argument's probe then asks its type for a [`DescribeRequest`], and the output's for a
//! [`DescribeResponse`]. A type without one (an app's own extractor, an `impl IntoResponse`)
//! is not an error: generated code calls `(&probe).describe_request(..)`, which method
//! resolution finds on `Probe<T>` when `T` describes itself and otherwise, one autoref later,
//! on `&Probe<T>`'s [`NotDescribed`] (autoref specialization, as `anyhow!` uses it).

use std::marker::PhantomData;

use http::StatusCode;
use schemars::JsonSchema;
use serde_json::json;

use super::DocumentBuilder;
use crate::signature::Signature;

/// A type, carried as a value so that method resolution can look at it.
pub struct Probe<T: ?Sized>(PhantomData<fn() -> PhantomData<T>>);

impl<T: ?Sized> Probe<T> {
    fn new() -> Self {
        Self(PhantomData)
    }
}

/// The argument types of `handler`, as a tuple.
pub fn arguments<Arguments, F: Signature<Arguments>>(_handler: &F) -> Probe<Arguments> {
    Probe::new()
}

/// The output type of `handler`.
pub fn output<Arguments, F: Signature<Arguments>>(_handler: &F) -> Probe<F::Output> {
    Probe::new()
}

/// The `N`th type of a tuple.
pub trait Nth<const N: usize> {
    /// That type.
    type Item;
}

macro_rules! nth {
    ($index:literal => $item:ident; $($all:ident),*) => {
        impl<$($all,)*> Nth<$index> for ($($all,)*) {
            type Item = $item;
        }
    };
}

// Spelled out rather than generated further: a dozen arguments is axum's limit too.
nth!(0 => T1; T1);
nth!(0 => T1; T1, T2);
nth!(1 => T2; T1, T2);
nth!(0 => T1; T1, T2, T3);
nth!(1 => T2; T1, T2, T3);
nth!(2 => T3; T1, T2, T3);
nth!(0 => T1; T1, T2, T3, T4);
nth!(1 => T2; T1, T2, T3, T4);
nth!(2 => T3; T1, T2, T3, T4);
nth!(3 => T4; T1, T2, T3, T4);
nth!(0 => T1; T1, T2, T3, T4, T5);
nth!(1 => T2; T1, T2, T3, T4, T5);
nth!(2 => T3; T1, T2, T3, T4, T5);
nth!(3 => T4; T1, T2, T3, T4, T5);
nth!(4 => T5; T1, T2, T3, T4, T5);
nth!(0 => T1; T1, T2, T3, T4, T5, T6);
nth!(1 => T2; T1, T2, T3, T4, T5, T6);
nth!(2 => T3; T1, T2, T3, T4, T5, T6);
nth!(3 => T4; T1, T2, T3, T4, T5, T6);
nth!(4 => T5; T1, T2, T3, T4, T5, T6);
nth!(5 => T6; T1, T2, T3, T4, T5, T6);
nth!(0 => T1; T1, T2, T3, T4, T5, T6, T7);
nth!(1 => T2; T1, T2, T3, T4, T5, T6, T7);
nth!(2 => T3; T1, T2, T3, T4, T5, T6, T7);
nth!(3 => T4; T1, T2, T3, T4, T5, T6, T7);
nth!(4 => T5; T1, T2, T3, T4, T5, T6, T7);
nth!(5 => T6; T1, T2, T3, T4, T5, T6, T7);
nth!(6 => T7; T1, T2, T3, T4, T5, T6, T7);
nth!(0 => T1; T1, T2, T3, T4, T5, T6, T7, T8);
nth!(1 => T2; T1, T2, T3, T4, T5, T6, T7, T8);
nth!(2 => T3; T1, T2, T3, T4, T5, T6, T7, T8);
nth!(3 => T4; T1, T2, T3, T4, T5, T6, T7, T8);
nth!(4 => T5; T1, T2, T3, T4, T5, T6, T7, T8);
nth!(5 => T6; T1, T2, T3, T4, T5, T6, T7, T8);
nth!(6 => T7; T1, T2, T3, T4, T5, T6, T7, T8);
nth!(7 => T8; T1, T2, T3, T4, T5, T6, T7, T8);

/// The `N`th argument of the tuple `arguments` probes.
pub fn nth<const N: usize, Arguments: Nth<N>>(
    _arguments: &Probe<Arguments>,
) -> Probe<Arguments::Item> {
    Probe::new()
}

/// What an extractor adds to the operation that takes it: parameters, a request body, the
/// errors it answers with. Implement it for an extractor of your own to document it; without
/// it, the extractor adds nothing.
pub trait DescribeRequest {
    /// Adds to the current operation of `document`.
    fn describe(document: &mut DocumentBuilder);
}

/// What a handler's output adds to its operation: its success responses.
pub trait DescribeResponse {
    /// Adds to the current operation of `document`.
    fn describe(document: &mut DocumentBuilder);
}

/// Describes the probed argument through its [`DescribeRequest`] (see the module docs).
pub trait ViaDescribeRequest {
    /// See [`DescribeRequest::describe`].
    fn describe_request(&self, document: &mut DocumentBuilder);
}

impl<T: DescribeRequest> ViaDescribeRequest for Probe<T> {
    fn describe_request(&self, document: &mut DocumentBuilder) {
        T::describe(document);
    }
}

/// Describes the probed output through its [`DescribeResponse`] (see the module docs).
pub trait ViaDescribeResponse {
    /// See [`DescribeResponse::describe`].
    fn describe_response(&self, document: &mut DocumentBuilder);
}

impl<T: DescribeResponse> ViaDescribeResponse for Probe<T> {
    fn describe_response(&self, document: &mut DocumentBuilder) {
        T::describe(document);
    }
}

/// The fallback for a type that describes nothing: an argument adds nothing, an output a
/// success response without a documented body.
pub trait NotDescribed {
    /// Adds nothing.
    fn describe_request(&self, _document: &mut DocumentBuilder) {}

    /// A success response, body undocumented, as for a [`crate::Response`].
    fn describe_response(&self, document: &mut DocumentBuilder) {
        <crate::Response as DescribeResponse>::describe(document);
    }
}

impl<T: ?Sized> NotDescribed for &Probe<T> {}

macro_rules! describes_nothing {
    ($($ty:ty),* $(,)?) => {
        $(impl DescribeRequest for $ty {
            fn describe(_document: &mut DocumentBuilder) {}
        })*
    };
}

describes_nothing!(
    http::HeaderMap,
    http::Method,
    http::Uri,
    http::request::Parts,
    crate::RequestId,
    crate::ClientIp,
    crate::Shutdown,
);

impl<S> DescribeRequest for axum::extract::State<S> {
    fn describe(_document: &mut DocumentBuilder) {}
}

impl<T> DescribeRequest for crate::Extension<T> {
    fn describe(_document: &mut DocumentBuilder) {}
}

impl<T: JsonSchema> DescribeRequest for crate::Json<T> {
    fn describe(document: &mut DocumentBuilder) {
        document.request_body::<T>("application/json");
        document.error(400, "INVALID_JSON");
        document.error(400, "VALIDATION_ERROR");
    }
}

impl<T: JsonSchema> DescribeRequest for crate::Form<T> {
    fn describe(document: &mut DocumentBuilder) {
        document.request_body::<T>("application/x-www-form-urlencoded");
        document.error(400, "VALIDATION_ERROR");
    }
}

impl<T: JsonSchema> DescribeRequest for crate::Query<T> {
    fn describe(document: &mut DocumentBuilder) {
        document.query_schema::<T>();
    }
}

impl<T: JsonSchema> DescribeRequest for crate::Path<T> {
    fn describe(document: &mut DocumentBuilder) {
        document.path_schema::<T>();
    }
}

#[cfg(feature = "validate")]
impl<E: DescribeRequest> DescribeRequest for crate::Valid<E> {
    fn describe(document: &mut DocumentBuilder) {
        E::describe(document);
        document.error(400, "VALIDATION_ERROR");
    }
}

/// Its answer is an event stream; the route's `describe_GET` can name the event types.
#[cfg(feature = "streaming")]
impl DescribeRequest for crate::sse::Sse {
    fn describe(document: &mut DocumentBuilder) {
        document.event_stream();
    }
}

impl<P> DescribeRequest for crate::auth::Auth<P> {
    fn describe(document: &mut DocumentBuilder) {
        document.error(401, "UNAUTHORIZED");
    }
}

#[cfg(feature = "conditional")]
impl DescribeRequest for crate::conditional::Preconditions {
    fn describe(document: &mut DocumentBuilder) {
        // `*`, or entity tags (`"3"`, `W/"3"`) separated by commas: what `TagList` parses.
        let tags = json!({
            "type": "string",
            "pattern": r#"^(\*|(W/)?"[!#-~]*"( ?, ?(W/)?"[!#-~]*")*)$"#,
        });
        document.header_parameter_schema(
            "If-Match",
            "Entity tags: the request applies only if the resource still has one of them.",
            tags.clone(),
        );
        document.header_parameter_schema(
            "If-None-Match",
            "Entity tags: `304 Not Modified` if the resource still has one of them.",
            tags,
        );
        document.error(400, "INVALID_PRECONDITION");
        document.error(412, "PRECONDITION_FAILED");
        document.error(428, "PRECONDITION_REQUIRED");
        document.not_modified();
    }
}

impl<T: JsonSchema> DescribeResponse for crate::Json<T> {
    fn describe(document: &mut DocumentBuilder) {
        let schema = document.schema_for::<T>().to_value();
        document.response(None, Some(("application/json", schema)));
    }
}

/// `R`, with the `ETag` and `Last-Modified` headers.
#[cfg(feature = "conditional")]
impl<R: DescribeResponse> DescribeResponse for (crate::conditional::Validators, R) {
    fn describe(document: &mut DocumentBuilder) {
        R::describe(document);
        document.validators();
    }
}

impl<R: DescribeResponse> DescribeResponse for (StatusCode, R) {
    fn describe(document: &mut DocumentBuilder) {
        R::describe(document);
    }
}

impl<T: DescribeResponse, E: DescribeResponse> DescribeResponse for Result<T, E> {
    fn describe(document: &mut DocumentBuilder) {
        T::describe(document);
        E::describe(document);
    }
}

/// Any status, in the standard shape: the `default` response.
impl DescribeResponse for crate::ApiError {
    fn describe(document: &mut DocumentBuilder) {
        document.other_errors();
    }
}

impl DescribeResponse for StatusCode {
    fn describe(document: &mut DocumentBuilder) {
        document.response(None, None);
    }
}

impl DescribeResponse for () {
    fn describe(document: &mut DocumentBuilder) {
        document.response(None, None);
    }
}

impl DescribeResponse for String {
    fn describe(document: &mut DocumentBuilder) {
        document.response(None, Some(("text/plain", json!({ "type": "string" }))));
    }
}

/// A response the type says nothing about: a success whose body is undocumented (with a
/// `Result<Response, ApiError>`, the errors are still documented).
impl DescribeResponse for crate::Response {
    fn describe(document: &mut DocumentBuilder) {
        document.response(None, None);
    }
}

impl DescribeResponse for &'static str {
    fn describe(document: &mut DocumentBuilder) {
        String::describe(document);
    }
}
