//! What a route handler is: the one rulebook for the build step and `#[arbor::handler]`.
//!
//! A handler is a `pub async fn` named after the HTTP method it answers, in uppercase:
//! `pub async fn GET(..)`. The build step reads every item of a route file through
//! [`check_fn`] and [`check_non_fn`]; the attribute checks the fn it is on through the same
//! functions, so both report the same mistakes with the same words. Each [`Problem`] carries the
//! span of the token it is about, a message and a `help` line.

use std::fmt;

use proc_macro2::Span;
use syn::{Ident, Signature, Visibility};

/// An HTTP method a route file can export a handler for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// `GET` (also answers `HEAD` unless `HEAD` is exported).
    Get,
    /// `HEAD`.
    Head,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
    /// `PATCH`.
    Patch,
    /// `DELETE`.
    Delete,
    /// `OPTIONS` (answered automatically unless exported).
    Options,
}

impl Method {
    /// Every method, in the order `Allow` headers list them.
    pub const ALL: [Method; 7] = [
        Method::Get,
        Method::Head,
        Method::Post,
        Method::Put,
        Method::Patch,
        Method::Delete,
        Method::Options,
    ];

    /// The export name and wire name: `GET`, `POST`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
        }
    }

    /// The method whose export name this is, exactly (`GET`, not `get`).
    pub fn from_export(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }

    /// The method this name spells in another case (`get`, `Get`), but not exactly.
    pub fn from_miscased(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(name) && m.as_str() != name)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who is asking whether a fn is a handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// The build step, reading every fn of a route file: a fn that is not named after a method
    /// is one of the file's helpers, and a private `get` may be one too.
    RouteFile,
    /// `#[arbor::handler(..)]`: the fn it is written on must be a handler.
    Attribute,
}

/// A rule of the handler shape, broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// `pub async fn get`: a method name, not in uppercase.
    Miscased {
        /// The name as written.
        name: String,
        /// The method it spells.
        method: Method,
    },
    /// `#[arbor::handler] fn helper`: not a method name at all.
    NotAMethod {
        /// The name as written.
        name: String,
    },
    /// `async fn GET`.
    NotPublic {
        /// The method name.
        name: String,
    },
    /// `pub fn GET`.
    NotAsync {
        /// The method name.
        name: String,
    },
    /// `pub const GET` or `pub static GET`.
    NotAFn {
        /// The method name.
        name: String,
        /// `const` or `static`.
        kind: &'static str,
    },
}

/// One broken rule, at the token it is about.
#[derive(Debug, Clone)]
pub struct Problem {
    /// Which rule.
    pub violation: Violation,
    /// The name of the fn or item the rule is about.
    pub span: Span,
}

impl Problem {
    /// What is wrong, in one line.
    pub fn message(&self) -> String {
        match &self.violation {
            Violation::Miscased { name, .. } => {
                format!("`{name}` looks like a handler, but handlers are named in uppercase")
            }
            Violation::NotAMethod { name } => format!(
                "`#[arbor::handler]` goes on a handler named after an HTTP method \
                 (GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS), and `{name}` is not one"
            ),
            Violation::NotPublic { name } => format!("handler `{name}` is not public"),
            Violation::NotAsync { name } => format!("handler `{name}` is not async"),
            Violation::NotAFn { name, kind } => {
                format!("`{name}` must be an async fn, not a {kind}")
            }
        }
    }

    /// How to fix it.
    pub fn help(&self) -> String {
        match &self.violation {
            Violation::Miscased { method, .. } => format!("rename it to `{method}`"),
            Violation::NotAMethod { .. } => {
                "name it after the method it answers, such as `GET`, or remove the attribute"
                    .to_owned()
            }
            Violation::NotPublic { name } => format!("export it: `pub async fn {name}(..)`"),
            Violation::NotAsync { name } => format!("declare it `pub async fn {name}(..)`"),
            Violation::NotAFn { name, .. } => format!("write `pub async fn {name}(..)`"),
        }
    }

    /// The problem as a compile error for a macro: message and help on one line, at the span.
    pub fn to_syn_error(&self) -> syn::Error {
        syn::Error::new(self.span, format!("{}; {}", self.message(), self.help()))
    }
}

/// What [`check_fn`] makes of a fn.
#[derive(Debug, Clone)]
pub struct HandlerFn {
    /// The method the fn answers, when its name is one, exactly.
    pub method: Option<Method>,
    /// Every rule it breaks; empty for a well-formed handler, and for a helper.
    pub problems: Vec<Problem>,
}

/// Judges a fn by its visibility and signature.
///
/// In a [`Context::RouteFile`], a fn not named after a method is a helper (no problems) and a
/// miscased one (`get`) is only reported when it is public, since a private `get` cannot be an
/// export either way. Under [`Context::Attribute`], the fn must be a handler.
pub fn check_fn(vis: &Visibility, sig: &Signature, context: Context) -> HandlerFn {
    let name = sig.ident.to_string();
    let is_pub = matches!(vis, Visibility::Public(_));
    let mut problems = Vec::new();
    let method = Method::from_export(&name);
    if method.is_none() {
        let violation = match (Method::from_miscased(&name), context) {
            (Some(method), Context::Attribute) => Some(Violation::Miscased { name, method }),
            (Some(method), Context::RouteFile) if is_pub => {
                Some(Violation::Miscased { name, method })
            }
            (None, Context::Attribute) => Some(Violation::NotAMethod { name }),
            _ => None,
        };
        problems.extend(violation.map(|violation| Problem {
            violation,
            span: sig.ident.span(),
        }));
        return HandlerFn { method, problems };
    }
    if !is_pub {
        problems.push(Problem {
            violation: Violation::NotPublic { name: name.clone() },
            span: sig.ident.span(),
        });
    }
    if sig.asyncness.is_none() {
        problems.push(Problem {
            violation: Violation::NotAsync { name },
            span: sig.ident.span(),
        });
    }
    HandlerFn { method, problems }
}

/// A `const` or `static` named after a method: an export that is not a fn.
pub fn check_non_fn(ident: &Ident, kind: &'static str) -> Option<Problem> {
    let name = ident.to_string();
    Method::from_export(&name).map(|_| Problem {
        violation: Violation::NotAFn { name, kind },
        span: ident.span(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn check(src: &str, context: Context) -> (Option<Method>, Vec<String>) {
        let func: syn::ItemFn = syn::parse_str(src).unwrap();
        let checked = check_fn(&func.vis, &func.sig, context);
        let problems = checked
            .problems
            .iter()
            .map(|p| format!("{} | {}", p.message(), p.help()))
            .collect();
        (checked.method, problems)
    }

    #[test]
    fn a_pub_async_method_fn_is_a_handler_in_both_contexts() {
        for context in [Context::RouteFile, Context::Attribute] {
            assert_eq!(
                check("pub async fn PATCH() {}", context),
                (Some(Method::Patch), vec![])
            );
        }
    }

    #[test]
    fn helpers_are_only_a_problem_under_the_attribute() {
        assert_eq!(check("fn helper() {}", Context::RouteFile), (None, vec![]));
        assert_eq!(
            check("async fn get() {}", Context::RouteFile),
            (None, vec![])
        );
        let (method, problems) = check("pub async fn helper() {}", Context::Attribute);
        assert_eq!(method, None);
        assert!(
            problems[0].contains("and `helper` is not one"),
            "{problems:?}"
        );
    }

    #[test]
    fn miscased_names_are_reported_with_the_method_to_use() {
        for context in [Context::RouteFile, Context::Attribute] {
            assert_eq!(
                check("pub async fn Delete() {}", context).1,
                ["`Delete` looks like a handler, but handlers are named in uppercase | rename it to `DELETE`"]
            );
        }
        // Under the attribute, even a private one: it was marked as a handler.
        assert_eq!(check("fn get() {}", Context::Attribute).1.len(), 1);
    }

    #[test]
    fn missing_pub_and_async_are_both_reported_at_the_name() {
        let func: syn::ItemFn = syn::parse_str("fn PUT() {}").unwrap();
        let checked = check_fn(&func.vis, &func.sig, Context::RouteFile);
        assert_eq!(checked.method, Some(Method::Put));
        let shown: Vec<String> = checked
            .problems
            .iter()
            .map(|p| format!("{} | {}", p.message(), p.help()))
            .collect();
        assert_eq!(
            shown,
            [
                "handler `PUT` is not public | export it: `pub async fn PUT(..)`",
                "handler `PUT` is not async | declare it `pub async fn PUT(..)`",
            ]
        );
        assert!(checked
            .problems
            .iter()
            .all(|p| p.span.start() == func.sig.ident.span().start()));
    }

    #[test]
    fn consts_and_statics_named_after_methods_are_not_handlers() {
        let item: syn::ItemConst = syn::parse_str("pub const GET: u8 = 0;").unwrap();
        let problem = check_non_fn(&item.ident, "const").unwrap();
        assert_eq!(problem.message(), "`GET` must be an async fn, not a const");
        assert_eq!(problem.help(), "write `pub async fn GET(..)`");
        let item: syn::ItemConst = syn::parse_str("pub const LIMIT: u8 = 0;").unwrap();
        assert!(check_non_fn(&item.ident, "const").is_none());
    }

    #[test]
    fn method_names_are_exact() {
        assert_eq!(Method::from_export("OPTIONS"), Some(Method::Options));
        assert_eq!(Method::from_export("Options"), None);
        assert_eq!(Method::from_miscased("Options"), Some(Method::Options));
        assert_eq!(Method::from_miscased("OPTIONS"), None);
        assert_eq!(Method::from_miscased("fetch"), None);
    }
}
