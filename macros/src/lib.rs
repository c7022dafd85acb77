//! Procedural macros of [Arbor](https://docs.rs/arbor). Use them through `arbor::handler` and
//! `arbor::middleware!`; their documentation lives there.
//!
//! Parsing the middleware list and the rules for what a handler is are shared with
//! `arbor-build` through `arbor-syntax`, so the build step and the macros always read a route
//! file the same way; checking the list's types and expansion live here.

mod expand;

use proc_macro::TokenStream;

/// Wraps a route handler in middleware, first listed outermost.
///
/// ```ignore
/// #[arbor::handler(require_user, rate_limit(limit = 5, window = 60))]
/// pub async fn POST(Extension(user): Extension<User>, Json(body): Json<NewPost>) -> impl IntoResponse {
///     /* ... */
/// }
/// ```
///
/// Each entry is either the path of an async middleware fn `(Request, Next) -> impl IntoResponse`
/// (it may take extractors before the request), or a constructor call whose value is a tower
/// `Layer`: `name(a, b, key = value)` calls `name(a, b).key(value)`.
#[proc_macro_attribute]
pub fn handler(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::handler(args.into(), item.into()).into()
}

/// Declares middleware for every handler of a route file, or, in a folder's `middleware.rs`,
/// for every route below that folder. Same list syntax as [`macro@handler`].
///
/// ```ignore
/// // app/api/(auth)/middleware.rs
/// arbor::middleware!(csrf_origin_check, rate_limit(limit = 20, window = 60));
/// ```
#[proc_macro]
pub fn middleware(input: TokenStream) -> TokenStream {
    expand::middleware(input.into()).into()
}
