//! What a client sends for a handler, read from the handler's argument types: each argument
//! is a [`ClientArgument`] whose [`Part`](ClientArgument::Part) is the path parameters, the
//! query, the body, or nothing; the tuple of them folds into one [`RequestShape`].
//!
//! All of it happens in the type system, so a call whose parameters or body have the wrong
//! type does not compile. The fold is a type-level record with three slots, each filled at
//! most once (a second body is not a request a client can send).

use std::marker::PhantomData;

use bytes::Bytes;
use serde::Serialize;

/// An extractor's part of a request, as a client sends it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not say what a client sends for it",
    label = "a handler argument of this type has no `arbor::client::ClientArgument`",
    note = "an extractor that a client sends nothing for (state, auth, headers of its own) implements it with `type Part = arbor::client::Nothing;`"
)]
pub trait ClientArgument {
    /// [`Nothing`], [`PathParameters<T>`], [`QueryString<T>`], [`JsonBody<T>`],
    /// [`FormBody<T>`] or [`RawBody`].
    type Part;
}

/// An argument a client sends nothing for: the app's state, the signed-in user (a cookie or a
/// bearer token the client holds), the request's headers.
#[derive(Debug)]
pub enum Nothing {}

/// The path parameters, a `T` filled into the route's pattern by name (a struct) or in order
/// (one value, a tuple).
#[derive(Debug)]
pub struct PathParameters<T>(PhantomData<T>);

/// The query string, a `T` encoded as `application/x-www-form-urlencoded`.
#[derive(Debug)]
pub struct QueryString<T>(PhantomData<T>);

/// A JSON body of type `T`.
#[derive(Debug)]
pub struct JsonBody<T>(PhantomData<T>);

/// A form body of type `T`.
#[derive(Debug)]
pub struct FormBody<T>(PhantomData<T>);

/// A body of raw bytes (set its `Content-Type` on the call).
#[derive(Debug)]
pub struct RawBody;

/// An empty slot of the fold.
#[derive(Debug)]
pub enum Absent {}

/// A filled slot of the fold.
#[derive(Debug)]
pub struct Present<T>(PhantomData<T>);

/// The fold's record: path parameters, query, body.
#[derive(Debug)]
pub struct Shape<P, Q, B>(PhantomData<(P, Q, B)>);

/// The record after adding `Part`. A slot filled twice has no impl.
pub trait AddPart<Part> {
    /// The record with `Part` in its slot.
    type Output;
}

impl<P, Q, B> AddPart<Nothing> for Shape<P, Q, B> {
    type Output = Self;
}

impl<Q, B, T> AddPart<PathParameters<T>> for Shape<Absent, Q, B> {
    type Output = Shape<Present<T>, Q, B>;
}

impl<P, B, T> AddPart<QueryString<T>> for Shape<P, Absent, B> {
    type Output = Shape<P, Present<T>, B>;
}

impl<P, Q, T> AddPart<JsonBody<T>> for Shape<P, Q, Absent> {
    type Output = Shape<P, Q, JsonBody<T>>;
}

impl<P, Q, T> AddPart<FormBody<T>> for Shape<P, Q, Absent> {
    type Output = Shape<P, Q, FormBody<T>>;
}

impl<P, Q> AddPart<RawBody> for Shape<P, Q, Absent> {
    type Output = Shape<P, Q, RawBody>;
}

/// The record after adding every argument of a tuple, first to last.
pub trait FoldArguments<Record> {
    /// The finished record.
    type Output;
}

impl<Record> FoldArguments<Record> for () {
    type Output = Record;
}

macro_rules! fold_arguments {
    ($first:ident $(, $rest:ident)*) => {
        impl<Record, $first: ClientArgument, $($rest,)*> FoldArguments<Record> for ($first, $($rest,)*)
        where
            Record: AddPart<$first::Part>,
            ($($rest,)*): FoldArguments<<Record as AddPart<$first::Part>>::Output>,
        {
            type Output =
                <($($rest,)*) as FoldArguments<<Record as AddPart<$first::Part>>::Output>>::Output;
        }
    };
}

fold_arguments!(T1);
fold_arguments!(T1, T2);
fold_arguments!(T1, T2, T3);
fold_arguments!(T1, T2, T3, T4);
fold_arguments!(T1, T2, T3, T4, T5);
fold_arguments!(T1, T2, T3, T4, T5, T6);
fold_arguments!(T1, T2, T3, T4, T5, T6, T7);
fold_arguments!(T1, T2, T3, T4, T5, T6, T7, T8);
fold_arguments!(T1, T2, T3, T4, T5, T6, T7, T8, T9);
fold_arguments!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10);
fold_arguments!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11);
fold_arguments!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12);

/// The record nothing has been added to.
pub type EmptyShape = Shape<Absent, Absent, Absent>;

/// What a client passes for a handler whose argument tuple is `Arguments`.
pub trait RequestShape {
    /// The path parameters (`()` when the handler reads none).
    type Params: Serialize;
    /// The query (`()` when the handler reads none).
    type Query: Serialize;
    /// The body (`()` when the handler reads none).
    type Body;
    /// The body as bytes, and its `Content-Type`.
    fn encode_body(body: &Self::Body) -> Result<(Option<&'static str>, Bytes), EncodeError>;
}

/// A value a client could not encode (a map with non-string keys as a form, a float that is
/// not a number as JSON).
#[derive(Debug)]
pub struct EncodeError(pub(crate) String);

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the request could not be encoded: {}", self.0)
    }
}

impl std::error::Error for EncodeError {}

/// A slot's value: `()` when absent.
pub trait Slot {
    /// The value.
    type Value: Serialize;
}

impl Slot for Absent {
    type Value = ();
}

impl<T: Serialize> Slot for Present<T> {
    type Value = T;
}

/// A body slot's value and its encoding.
pub trait BodySlot {
    /// The value.
    type Value;
    /// See [`RequestShape::encode_body`].
    fn encode(value: &Self::Value) -> Result<(Option<&'static str>, Bytes), EncodeError>;
}

impl BodySlot for Absent {
    type Value = ();
    fn encode((): &()) -> Result<(Option<&'static str>, Bytes), EncodeError> {
        Ok((None, Bytes::new()))
    }
}

impl<T: Serialize> BodySlot for JsonBody<T> {
    type Value = T;
    fn encode(value: &T) -> Result<(Option<&'static str>, Bytes), EncodeError> {
        let bytes = serde_json::to_vec(value).map_err(|e| EncodeError(e.to_string()))?;
        Ok((Some("application/json"), bytes.into()))
    }
}

impl<T: Serialize> BodySlot for FormBody<T> {
    type Value = T;
    fn encode(value: &T) -> Result<(Option<&'static str>, Bytes), EncodeError> {
        let text = serde_urlencoded::to_string(value).map_err(|e| EncodeError(e.to_string()))?;
        Ok((Some("application/x-www-form-urlencoded"), text.into()))
    }
}

impl BodySlot for RawBody {
    type Value = Bytes;
    fn encode(value: &Bytes) -> Result<(Option<&'static str>, Bytes), EncodeError> {
        Ok((None, value.clone()))
    }
}

impl<P: Slot, Q: Slot, B: BodySlot> RequestShape for Shape<P, Q, B> {
    type Params = P::Value;
    type Query = Q::Value;
    type Body = B::Value;
    fn encode_body(body: &B::Value) -> Result<(Option<&'static str>, Bytes), EncodeError> {
        B::encode(body)
    }
}

/// A handler's argument tuple, as a client sends it: every tuple of [`ClientArgument`]s with
/// at most one part of each kind.
pub trait ClientArguments {
    /// The parameters, query and body.
    type Shape: RequestShape;
}

impl<Arguments> ClientArguments for Arguments
where
    Arguments: FoldArguments<EmptyShape>,
    Arguments::Output: RequestShape,
{
    type Shape = Arguments::Output;
}

/// The request shape of a handler whose argument tuple is `Arguments`.
pub type ShapeOf<Arguments> = <Arguments as ClientArguments>::Shape;
/// The path parameters a client passes to a handler whose argument tuple is `Arguments`.
pub type ParamsOf<Arguments> = <ShapeOf<Arguments> as RequestShape>::Params;
/// The query a client may pass to a handler whose argument tuple is `Arguments`.
pub type QueryOf<Arguments> = <ShapeOf<Arguments> as RequestShape>::Query;
/// The body a client passes to a handler whose argument tuple is `Arguments`.
pub type BodyOf<Arguments> = <ShapeOf<Arguments> as RequestShape>::Body;

impl<T> ClientArgument for crate::Path<T> {
    type Part = PathParameters<T>;
}

impl<T> ClientArgument for crate::Query<T> {
    type Part = QueryString<T>;
}

impl<T> ClientArgument for crate::Json<T> {
    type Part = JsonBody<T>;
}

impl<T> ClientArgument for crate::Form<T> {
    type Part = FormBody<T>;
}

#[cfg(feature = "validate")]
impl<E: ClientArgument> ClientArgument for crate::Valid<E> {
    type Part = E::Part;
}

/// An optional extractor sends what it would send: a client that has it sends it.
impl<E: ClientArgument> ClientArgument for Option<E> {
    type Part = E::Part;
}

/// A fallible extractor sends what it would send.
impl<E: ClientArgument, R> ClientArgument for Result<E, R> {
    type Part = E::Part;
}

macro_rules! sends {
    ($part:ty => $($ty:ty),* $(,)?) => {
        $(impl ClientArgument for $ty {
            type Part = $part;
        })*
    };
}

sends!(Nothing =>
    http::HeaderMap,
    http::Method,
    http::Uri,
    http::Extensions,
    http::request::Parts,
    crate::RequestId,
    crate::ClientIp,
    crate::Shutdown,
);
sends!(RawBody => Bytes, crate::Request, String);

impl<S> ClientArgument for axum::extract::State<S> {
    type Part = Nothing;
}

impl<T> ClientArgument for crate::Extension<T> {
    type Part = Nothing;
}

impl<T> ClientArgument for axum::extract::ConnectInfo<T> {
    type Part = Nothing;
}

/// The client holds the credential (a session cookie, a bearer token) itself.
impl<P> ClientArgument for crate::auth::Auth<P> {
    type Part = Nothing;
}

#[cfg(feature = "conditional")]
sends!(Nothing => crate::conditional::Preconditions);
#[cfg(feature = "sessions")]
sends!(Nothing => crate::sessions::Session);
#[cfg(feature = "streaming")]
sends!(Nothing => crate::sse::Sse);
#[cfg(feature = "cache")]
sends!(Nothing => crate::cache::Invalidator);
#[cfg(feature = "cookies")]
sends!(Nothing => crate::cookies::Cookies);
#[cfg(feature = "cookies-signed")]
sends!(Nothing => crate::cookies::SignedCookies);
#[cfg(feature = "cookies-private")]
sends!(Nothing => crate::cookies::PrivateCookies);
#[cfg(feature = "csrf")]
sends!(Nothing => crate::csrf::CsrfToken);
#[cfg(feature = "webhooks")]
sends!(RawBody => crate::webhooks::WebhookEvent);
