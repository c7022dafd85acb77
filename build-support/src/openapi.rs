//! The generated `openapi()`: the contract of every exported handler, derived from the route
//! table (paths, parameters, tags, doc comments, middleware) and, at run time, from the
//! handlers' own types (see `arbor::openapi`). No I/O happens here.

use proc_macro2::{Ident, Span, TokenStream};
use quote::quote;

use crate::generate::{middleware_chain, operations, Options};
use crate::model::{Route, RouteTable};
use crate::segment::Segment;

/// `pub fn openapi()` and the fn that describes each operation.
pub(crate) fn openapi_fn(
    table: &RouteTable,
    options: &Options<'_>,
    modules: &[Ident],
) -> TokenStream {
    let operations =
        operations(table, options.url_prefix, modules).map(|(route, module, handler, pattern)| {
            operation(table, route, module, handler, &pattern, options.url_prefix)
        });
    quote! {
        /// The API contract of these routes: an OpenAPI 3.1 document, built on first use
        /// (serve it with `arbor::App::openapi`).
        pub fn openapi() -> &'static ::arbor::openapi::OpenApi {
            static DOCUMENT: ::std::sync::LazyLock<::arbor::openapi::OpenApi> =
                ::std::sync::LazyLock::new(|| {
                    let mut document = ::arbor::openapi::DocumentBuilder::new(
                        env!("CARGO_PKG_NAME"),
                        env!("CARGO_PKG_VERSION"),
                    );
                    describe_operations(&mut document);
                    document.finish()
                });
            &DOCUMENT
        }

        /// Each handler's operation: what the route table says, then what its types say.
        #[allow(deprecated, unused_imports, unused_variables)]
        fn describe_operations(document: &mut ::arbor::openapi::DocumentBuilder) {
            use ::arbor::__private::describe::{
                NotDescribed as _, ViaDescribeRequest as _, ViaDescribeResponse as _,
            };
            #(#operations)*
        }
    }
}

/// The statements that describe one handler under one of its route's patterns.
fn operation(
    table: &RouteTable,
    route: &Route,
    module: &Ident,
    handler: &crate::source::Handler,
    axum_pattern: &str,
    url_prefix: &str,
) -> TokenStream {
    let method = handler.method.as_str();
    let export = Ident::new(method, Span::call_site());
    let (path, parameters) = openapi_path(axum_pattern);
    let lowercase = method.to_ascii_lowercase();
    let id = operation_id(&lowercase, axum_pattern, url_prefix);
    let tags = tags(route);
    let mut statements = vec![quote! { document.begin(#path, #lowercase, #id); }];
    if !tags.is_empty() {
        statements.push(quote! { document.tags(&[#(#tags),*]); });
    }
    if let Some(comment) = &handler.doc.comment {
        statements.push(quote! { document.doc_comment(#comment); });
    }
    if handler.doc.deprecated {
        statements.push(quote! { document.deprecated(); });
    }
    for (name, catch_all) in &parameters {
        statements.push(quote! { document.path_parameter(#name, #catch_all); });
    }
    for status in &handler.doc.success_statuses {
        statements.push(quote! { document.success_status(#status); });
    }
    let chain = middleware_chain(table, route, handler.middleware.as_deref());
    if !chain.is_empty() {
        statements.push(quote! { document.middleware(&[#(#chain),*]); });
    }
    // Each argument's type describes itself; a re-exported handler's arguments are not
    // counted by the build, so only its output is described.
    let arity = handler.doc.arguments.unwrap_or(0);
    if arity > 0 {
        let describe_arguments = (0..arity).map(|index| {
            quote! {
                (&::arbor::__private::describe::nth::<#index, _>(&arguments))
                    .describe_request(document);
            }
        });
        statements.push(quote! {
            let arguments = ::arbor::__private::describe::arguments(&#module::#export);
            #(#describe_arguments)*
        });
    }
    statements.push(quote! {
        (&::arbor::__private::describe::output(&#module::#export)).describe_response(document);
    });
    // Last, so that what the file says wins over what was derived.
    if handler.doc.described {
        let describe = Ident::new(
            &format!("{}{method}", crate::source::DESCRIBE_PREFIX),
            Span::call_site(),
        );
        statements.push(quote! { #module::#describe(document); });
    }
    quote! { { #(#statements)* } }
}

/// An axum pattern in OpenAPI's syntax (`{*rest}` becomes `{rest}`), and its parameters in
/// order with whether each is a catch-all.
fn openapi_path(axum_pattern: &str) -> (String, Vec<(String, bool)>) {
    let mut parameters = Vec::new();
    let path = axum_pattern
        .split('/')
        .map(
            |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => {
                    let (name, catch_all) = match name.strip_prefix('*') {
                        Some(name) => (name, true),
                        None => (name, false),
                    };
                    parameters.push((name.to_owned(), catch_all));
                    format!("{{{name}}}")
                }
                None => segment.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("/");
    (path, parameters)
}

/// `getV1UsersById` for `GET /api/v1/users/{id}`: the method, then each segment after the
/// prefix in camel case, parameters as `By<Name>`. Stable across builds: it changes only
/// when the URL or the method does.
fn operation_id(method: &str, axum_pattern: &str, url_prefix: &str) -> String {
    let mut id = method.to_owned();
    let rest = axum_pattern
        .strip_prefix(url_prefix.trim_end_matches('/'))
        .unwrap_or(axum_pattern);
    for segment in rest.split('/').filter(|s| !s.is_empty()) {
        let (word, by) = match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => (name.trim_start_matches('*'), true),
            None => (segment, false),
        };
        if by {
            id.push_str("By");
        }
        id.push_str(&camel(word));
    }
    if id == method {
        id.push_str("Root");
    }
    id
}

/// `reports-generate` → `ReportsGenerate`; `%5Fx` and other escapes are dropped.
fn camel(word: &str) -> String {
    let mut out = String::new();
    let mut upper = true;
    for c in percent_decoded(word).chars() {
        if c.is_ascii_alphanumeric() {
            out.push(if upper { c.to_ascii_uppercase() } else { c });
            upper = false;
        } else {
            upper = true;
        }
    }
    out
}

fn percent_decoded(word: &str) -> String {
    let bytes = word.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The route's groups, or else its last static folder: `(auth)/login` is tagged `auth`,
/// `v1/users/[id]` `users`.
fn tags(route: &Route) -> Vec<String> {
    let groups: Vec<String> = route
        .segments
        .iter()
        .filter_map(|segment| match segment {
            Segment::Group(name) => Some(name.clone()),
            _ => None,
        })
        .collect();
    if !groups.is_empty() {
        return groups;
    }
    route
        .url_segments()
        .filter_map(|segment| match segment {
            Segment::Static(name) => Some(name.clone()),
            _ => None,
        })
        .last()
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_ids_follow_the_url() {
        assert_eq!(
            openapi_path("/api/v1/users/{id}"),
            (
                "/api/v1/users/{id}".to_owned(),
                vec![("id".to_owned(), false)]
            )
        );
        assert_eq!(
            openapi_path("/api/files/{*path}"),
            (
                "/api/files/{path}".to_owned(),
                vec![("path".to_owned(), true)]
            )
        );
        assert_eq!(
            operation_id("get", "/api/v1/users/{id}", "/api"),
            "getV1UsersById"
        );
        assert_eq!(
            operation_id("post", "/api/reports/generate-now", "/api"),
            "postReportsGenerateNow"
        );
        assert_eq!(
            operation_id("get", "/api/docs/{*slug}", "/api"),
            "getDocsBySlug"
        );
        assert_eq!(operation_id("get", "/api", "/api"), "getRoot");
        assert_eq!(
            operation_id("get", "/api/%5Finternal", "/api"),
            "getInternal"
        );
    }
}
