//! The middleware-list syntax shared by `#[arbor::handler(..)]`, `arbor::middleware!(..)` and
//! the build step, so that all three read a list the same way.
//!
//! ```text
//! require_user                        an async fn (Request, Next) -> impl IntoResponse
//! rate_limit(limit = 5, window = 60)  a constructor: `rate_limit().limit(5).window(60)`
//! timeout(3)                          a constructor with positional arguments: `timeout(3)`
//! ```

use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, Token};

use crate::render_tokens;

/// A comma-separated middleware list, first listed outermost.
#[derive(Debug, Clone)]
pub struct MiddlewareList {
    /// The entries in the order written.
    pub items: Vec<Middleware>,
}

/// One entry of a middleware list.
#[derive(Debug, Clone)]
pub enum Middleware {
    /// `require_user`: an async middleware fn.
    Fn(syn::Path),
    /// `rate_limit(5, window = 60)`: a constructor whose value is a tower `Layer`.
    Constructor {
        /// The constructor fn.
        func: syn::Path,
        /// Arguments passed to the constructor call.
        positional: Vec<Expr>,
        /// `name = value` pairs, each applied as a `.name(value)` setter, in order.
        named: Vec<(Ident, Expr)>,
    },
}

impl Parse for MiddlewareList {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let items = Punctuated::<Middleware, Token![,]>::parse_terminated(input)?;
        Ok(Self {
            items: items.into_iter().collect(),
        })
    }
}

impl Parse for Middleware {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if !(input.peek(Ident)
            || input.peek(Token![::])
            || input.peek(Token![crate])
            || input.peek(Token![super])
            || input.peek(Token![self]))
        {
            return Err(input.error(
                "expected a middleware: the path of an async fn such as `require_user`, \
                 or a constructor call such as `rate_limit(limit = 5)`",
            ));
        }
        let func = input.call(fn_path)?;
        if !input.peek(syn::token::Paren) {
            return Ok(Self::Fn(func));
        }
        let content;
        syn::parenthesized!(content in input);
        let mut positional = Vec::new();
        let mut named: Vec<(Ident, Expr)> = Vec::new();
        let mut errors: Option<syn::Error> = None;
        let mut push_error = |error: syn::Error| match &mut errors {
            Some(errors) => errors.combine(error),
            None => errors = Some(error),
        };
        while !content.is_empty() {
            if content.peek(Ident) && content.peek2(Token![=]) && !content.peek2(Token![==]) {
                let name: Ident = content.parse()?;
                content.parse::<Token![=]>()?;
                let value: Expr = content.parse()?;
                if named.iter().any(|(existing, _)| *existing == name) {
                    push_error(syn::Error::new_spanned(
                        &name,
                        format!("`{name}` specified more than once"),
                    ));
                }
                named.push((name, value));
            } else {
                let value: Expr = content.parse()?;
                if !named.is_empty() {
                    push_error(syn::Error::new_spanned(
                        &value,
                        "positional arguments must come before `name = value` arguments",
                    ));
                }
                positional.push(value);
            }
            if content.is_empty() {
                break;
            }
            content.parse::<Token![,]>()?;
        }
        if let Some(errors) = errors {
            return Err(errors);
        }
        Ok(Self::Constructor {
            func,
            positional,
            named,
        })
    }
}

impl Middleware {
    /// The fn or constructor path, for spans and messages.
    pub fn path(&self) -> &syn::Path {
        match self {
            Self::Fn(path) | Self::Constructor { func: path, .. } => path,
        }
    }

    /// The entry as written, on one line, for route tables: `rate_limit(limit = 5, window = 60)`.
    ///
    /// Tokens are printed as they came, with rustfmt's spacing between them
    /// ([`render_tokens`]), so literals are never altered.
    pub fn display(&self) -> String {
        match self {
            Self::Fn(path) => render_tokens(path.to_token_stream()),
            Self::Constructor {
                func,
                positional,
                named,
            } => {
                let args: Vec<String> = positional
                    .iter()
                    .map(|value| render_tokens(value.to_token_stream()))
                    .chain(named.iter().map(|(name, value)| {
                        format!("{name} = {}", render_tokens(value.to_token_stream()))
                    }))
                    .collect();
                format!(
                    "{}({})",
                    render_tokens(func.to_token_stream()),
                    args.join(", ")
                )
            }
        }
    }
}

/// A module-style path whose last segment may name type arguments with a turbofish, as a
/// generic middleware fn does: `arbor::auth::require_auth_with_state::<Sessions>`.
fn fn_path(input: ParseStream<'_>) -> syn::Result<syn::Path> {
    let leading_colon: Option<Token![::]> = input.parse()?;
    let mut segments = Punctuated::new();
    loop {
        let ident = input.call(Ident::parse_any)?;
        // `::` is two tokens (`:` `:`), so `<` is the third.
        if input.peek(Token![::]) && input.peek3(Token![<]) {
            let arguments = syn::AngleBracketedGenericArguments::parse_turbofish(input)?;
            segments.push_value(syn::PathSegment {
                ident,
                arguments: syn::PathArguments::AngleBracketed(arguments),
            });
            break;
        }
        segments.push_value(syn::PathSegment::from(ident));
        if !input.peek(Token![::]) {
            break;
        }
        segments.push_punct(input.parse()?);
    }
    Ok(syn::Path {
        leading_colon,
        segments,
    })
}

/// Whether an attribute is Arbor's handler attribute (`#[handler(..)]` or `#[arbor::handler(..)]`).
pub fn is_handler_attribute(attr: &syn::Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|s| s.ident == "handler")
}

/// Whether a macro invocation is Arbor's `middleware!(..)` list.
pub fn is_middleware_macro(mac: &syn::Macro) -> bool {
    mac.path
        .segments
        .last()
        .is_some_and(|s| s.ident == "middleware")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(src: &str) -> syn::Result<MiddlewareList> {
        syn::parse_str(src)
    }

    #[test]
    fn parses_fns_and_constructors_in_order() {
        let list = parse(
            "require_user, crate::mw::csrf, rate_limit(limit = 5, window = 60), timeout(3), ::arbor::body_limit(10 * 1024 * 1024),",
        )
        .unwrap();
        let shown: Vec<String> = list.items.iter().map(Middleware::display).collect();
        assert_eq!(
            shown,
            [
                "require_user",
                "crate::mw::csrf",
                "rate_limit(limit = 5, window = 60)",
                "timeout(3)",
                "::arbor::body_limit(10 * 1024 * 1024)",
            ]
        );
    }

    #[test]
    fn generic_fns_keep_their_turbofish() {
        let list = parse("arbor::auth::require_auth_with_state::<Sessions>, csrf").unwrap();
        let shown: Vec<String> = list.items.iter().map(Middleware::display).collect();
        assert_eq!(
            shown,
            ["arbor::auth::require_auth_with_state::<Sessions>", "csrf"]
        );
        let Middleware::Fn(path) = &list.items[0] else {
            panic!("a generic fn is a fn entry");
        };
        assert!(!path.segments[2].arguments.is_none());
        let list = parse("timeout::<u64>(3)").unwrap();
        assert_eq!(list.items[0].display(), "timeout::<u64>(3)");
    }

    #[test]
    fn renders_string_literals_untouched() {
        let list = parse(
            r#"audit(". ", prefix = "a. b", sep = " ( , ) :: ."), cache(key = |r| format!("v1. {}", r.uri()))"#,
        )
        .unwrap();
        let shown: Vec<String> = list.items.iter().map(Middleware::display).collect();
        assert_eq!(
            shown,
            [
                r#"audit(". ", prefix = "a. b", sep = " ( , ) :: .")"#,
                r#"cache(key = |r| format!("v1. {}", r.uri()))"#,
            ]
        );
    }

    #[test]
    fn rejects_duplicates_misordered_arguments_and_non_paths() {
        let error = parse("rate_limit(limit = 5, limit = 6)").unwrap_err();
        assert_eq!(error.to_string(), "`limit` specified more than once");
        let error = parse("rate_limit(limit = 5, 60)").unwrap_err();
        assert_eq!(
            error.to_string(),
            "positional arguments must come before `name = value` arguments"
        );
        let error = parse("\"auth\"").unwrap_err();
        assert!(error.to_string().starts_with("expected a middleware"));
    }
}
