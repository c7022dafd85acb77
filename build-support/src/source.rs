//! Reading one `route.rs` or `middleware.rs`: which handlers it exports, and with what
//! middleware and path-param types.

use std::path::Path;

use arbor_syntax::attr::{self, MiddlewareList};
use arbor_syntax::handler::{self, Context, Problem};
pub(crate) use arbor_syntax::Method;
use syn::{FnArg, Item, Type, Visibility};

use crate::config;
use crate::diagnostic::{Diagnostic, Location};

/// What a `route.rs` exports.
#[derive(Debug, Clone, Default)]
pub(crate) struct RouteSource {
    /// Exported handlers, in `Allow` order.
    pub handlers: Vec<Handler>,
    /// `arbor::middleware!(..)` in the file: applies to every handler of the route.
    pub file_middleware: Option<Vec<String>>,
    /// Segment config the file exports.
    pub config: SegmentConfig,
}

/// Next.js-style segment config: `pub const NAME: u64 = ..;` in a route file, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SegmentConfig {
    /// `MAX_DURATION`: the route's timeout, replacing the app default.
    pub max_duration: bool,
    /// `REVALIDATE`: cache `GET` responses for this many seconds.
    pub revalidate: bool,
}

const CONFIG_CONSTS: [&str; 2] = [config::KNOWN[0].0, config::KNOWN[1].0];

/// One exported method handler.
#[derive(Debug, Clone)]
pub struct Handler {
    /// Which method it answers.
    pub method: Method,
    /// Where it is declared.
    pub location: Location,
    /// The `#[arbor::handler(..)]` list, rendered, when the fn has one.
    pub middleware: Option<Vec<String>>,
    /// The shape of its `Path<..>` argument, when it has one.
    pub path_params: Option<ParamsShape>,
    /// What the API contract says of it (nothing for a re-exported fn).
    pub doc: HandlerDoc,
}

/// What a handler's own declaration says for the API contract.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandlerDoc {
    /// Its doc comment, lines joined with `\n` and the comment's one leading space removed.
    pub comment: Option<String>,
    /// Whether it is `#[deprecated]`.
    pub deprecated: bool,
    /// How many arguments it takes, when it is declared in the file.
    pub arguments: Option<usize>,
    /// The success statuses its body answers with, as `(StatusCode::CREATED, ..)`,
    /// `Ok(StatusCode::NO_CONTENT)` or a tail `StatusCode::NO_CONTENT` name them; empty when it
    /// names none (a plain `200`).
    pub success_statuses: Vec<u16>,
    /// Whether the file exports `describe_<METHOD>`, which adds what its types cannot say
    /// (events, examples, extra answers) to its contract.
    pub described: bool,
}

/// What a route file names the fn that adds to a handler's contract: `describe_GET`.
pub(crate) const DESCRIBE_PREFIX: &str = "describe_";

impl HandlerDoc {
    fn of(func: &syn::ItemFn) -> Self {
        let lines: Vec<String> = func
            .attrs
            .iter()
            .filter(|a| a.path().is_ident("doc"))
            .filter_map(|a| match &a.meta {
                syn::Meta::NameValue(syn::MetaNameValue {
                    value:
                        syn::Expr::Lit(syn::ExprLit {
                            lit: syn::Lit::Str(text),
                            ..
                        }),
                    ..
                }) => Some(text.value()),
                _ => None,
            })
            .map(|line| {
                line.strip_prefix(' ')
                    .unwrap_or(&line)
                    .trim_end()
                    .to_owned()
            })
            .collect();
        let comment = lines.join("\n").trim().to_owned();
        let mut statuses = SuccessStatuses::default();
        syn::visit::Visit::visit_block(&mut statuses, &func.block);
        Self {
            comment: (!comment.is_empty()).then_some(comment),
            deprecated: func.attrs.iter().any(|a| a.path().is_ident("deprecated")),
            arguments: Some(func.sig.inputs.len()),
            success_statuses: statuses.found,
            described: false,
        }
    }
}

/// Finds the `2xx` statuses a fn body answers with: a `StatusCode::NAME` that is a value the
/// body may end with (a block's tail, a `match` arm, a `return`), wrapped in `Ok(..)`, or the
/// first element of a `(StatusCode::NAME, ..)` tuple.
#[derive(Default)]
struct SuccessStatuses {
    found: Vec<u16>,
}

impl SuccessStatuses {
    /// Records `expr` if it is a `2xx` `StatusCode::NAME`.
    fn record(&mut self, expr: &syn::Expr) {
        let syn::Expr::Path(path) = expr else {
            return;
        };
        let segments: Vec<String> = path
            .path
            .segments
            .iter()
            .map(|s| s.ident.to_string())
            .collect();
        if let [.., owner, name] = segments.as_slice() {
            let status = (owner == "StatusCode")
                .then(|| success_status(name))
                .flatten();
            if let Some(status) = status.filter(|s| !self.found.contains(s)) {
                self.found.push(status);
            }
        }
    }
}

impl<'ast> syn::visit::Visit<'ast> for SuccessStatuses {
    fn visit_expr_tuple(&mut self, tuple: &'ast syn::ExprTuple) {
        if let Some(first) = tuple.elems.first() {
            self.record(first);
        }
        syn::visit::visit_expr_tuple(self, tuple);
    }

    fn visit_expr_call(&mut self, call: &'ast syn::ExprCall) {
        if let (syn::Expr::Path(function), Some(argument)) = (&*call.func, call.args.first()) {
            if function.path.is_ident("Ok") {
                self.record(argument);
            }
        }
        syn::visit::visit_expr_call(self, call);
    }

    fn visit_expr_return(&mut self, ret: &'ast syn::ExprReturn) {
        if let Some(value) = &ret.expr {
            self.record(value);
        }
        syn::visit::visit_expr_return(self, ret);
    }

    /// The fn body's tail, and those of the `if`/`else` and `match` arm blocks inside it.
    /// (Recorded after what comes before it, so that statuses are listed in source order.)
    fn visit_block(&mut self, block: &'ast syn::Block) {
        syn::visit::visit_block(self, block);
        if let Some(syn::Stmt::Expr(tail, None)) = block.stmts.last() {
            self.record(tail);
        }
    }

    fn visit_arm(&mut self, arm: &'ast syn::Arm) {
        syn::visit::visit_arm(self, arm);
        self.record(&arm.body);
    }
}

/// The code of a `2xx` `http::StatusCode` constant.
fn success_status(name: &str) -> Option<u16> {
    Some(match name {
        "OK" => 200,
        "CREATED" => 201,
        "ACCEPTED" => 202,
        "NON_AUTHORITATIVE_INFORMATION" => 203,
        "NO_CONTENT" => 204,
        "RESET_CONTENT" => 205,
        "PARTIAL_CONTENT" => 206,
        "MULTI_STATUS" => 207,
        _ => return None,
    })
}

/// What a handler's `Path<T>` expects, as far as the file itself tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamsShape {
    /// A struct defined in the same file, with its (serde-renamed) field names.
    Struct {
        /// The struct's name.
        name: String,
        /// Field names as serde sees them.
        fields: Vec<String>,
    },
    /// A tuple of this many values.
    Tuple(usize),
    /// A single scalar (`String`, `u64`, `Uuid`, ...) or list.
    Single(String),
}

/// What a `middleware.rs` provides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FolderMiddlewareSource {
    /// `pub async fn middleware(req, next)`.
    Fn,
    /// `arbor::middleware!(..)`, rendered.
    List(Vec<String>),
}

/// Parses a route file; errors carry the file and line.
pub(crate) fn parse_route(path: &Path, contents: &str) -> Result<RouteSource, Vec<Diagnostic>> {
    let file = parse_file(path, contents)?;
    let mut source = RouteSource::default();
    let mut diagnostics = Vec::new();
    let mut revalidate_at = None;
    let structs: Vec<&syn::ItemStruct> = file
        .items
        .iter()
        .filter_map(|item| match item {
            Item::Struct(s) => Some(s),
            _ => None,
        })
        .collect();

    let mut describes = Vec::new();
    for item in &file.items {
        match item {
            Item::Fn(func) => {
                if let Some(method) = describe_method(&func.sig.ident) {
                    let location = Location::at(path, func.sig.ident.span());
                    if !matches!(func.vis, Visibility::Public(_)) {
                        diagnostics.push(
                            Diagnostic::new(format!("`{}` must be `pub`", func.sig.ident))
                                .at(location.clone())
                                .help(format!(
                                    "write `pub fn {}(operation: &mut arbor::openapi::DocumentBuilder)`",
                                    func.sig.ident
                                )),
                        );
                    }
                    describes.push((method, location));
                    continue;
                }
                let checked = handler::check_fn(&func.vis, &func.sig, Context::RouteFile);
                diagnostics.extend(checked.problems.iter().map(|p| problem(path, p)));
                let Some(method) = checked.method else {
                    continue;
                };
                let location = Location::at(path, func.sig.ident.span());
                let middleware = match func.attrs.iter().find(|a| attr::is_handler_attribute(a)) {
                    None => None,
                    Some(attribute) => match attribute.parse_args::<MiddlewareList>() {
                        Ok(list) => {
                            Some(list.items.iter().map(attr::Middleware::display).collect())
                        }
                        // The attribute macro reports the syntax error with its span.
                        Err(_) => Some(Vec::new()),
                    },
                };
                let path_params = func.sig.inputs.iter().find_map(|input| match input {
                    FnArg::Typed(arg) => path_params_shape(&arg.ty, &structs),
                    FnArg::Receiver(_) => None,
                });
                source.handlers.push(Handler {
                    method,
                    location,
                    middleware,
                    path_params,
                    doc: HandlerDoc::of(func),
                });
            }
            Item::Use(item) if matches!(item.vis, Visibility::Public(_)) => {
                for (name, span) in use_leaf_names(&item.tree) {
                    if let Some(method) = Method::from_export(&name) {
                        source.handlers.push(Handler {
                            method,
                            location: Location::at(path, span),
                            middleware: None,
                            path_params: None,
                            doc: HandlerDoc::default(),
                        });
                    }
                }
            }
            Item::Const(item) if CONFIG_CONSTS.contains(&item.ident.to_string().as_str()) => {
                let name = item.ident.to_string();
                let location = Location::at(path, item.ident.span());
                let is_u64 = matches!(&*item.ty, Type::Path(p) if p.path.is_ident("u64"));
                // `REVALIDATE` may also say `stale-while-revalidate`, through its own type.
                let is_revalidate = name == "REVALIDATE"
                    && matches!(&*item.ty, Type::Path(p)
                        if p.path.segments.last().is_some_and(|s| s.ident == "Revalidate"));
                if !matches!(item.vis, Visibility::Public(_)) || !(is_u64 || is_revalidate) {
                    let (types, help) = if name == "REVALIDATE" {
                        (
                            "`u64` (seconds) or `arbor::cache::Revalidate`",
                            format!("write `pub const {name}: u64 = 60;`, or `pub const {name}: arbor::cache::Revalidate = Revalidate::every(60).stale_while_revalidate(30);`"),
                        )
                    } else {
                        (
                            "`u64` (seconds)",
                            format!("write `pub const {name}: u64 = 60;`"),
                        )
                    };
                    diagnostics.push(
                        Diagnostic::new(format!(
                            "segment config `{name}` must be a `pub const` of type {types}"
                        ))
                        .at(location)
                        .help(help),
                    );
                } else if name == "MAX_DURATION" {
                    source.config.max_duration = true;
                } else {
                    source.config.revalidate = true;
                    revalidate_at = Some(location);
                }
            }
            Item::Const(item) => {
                diagnostics.extend(
                    handler::check_non_fn(&item.ident, "const")
                        .map(|p| problem(path, &p))
                        .or_else(|| unknown_config(path, &item.vis, &item.ident)),
                );
            }
            Item::Static(item) => {
                let name = item.ident.to_string();
                if CONFIG_CONSTS.contains(&name.as_str()) {
                    diagnostics.push(
                        Diagnostic::new(format!(
                            "segment config `{name}` must be a `pub const` of type `u64` (seconds)"
                        ))
                        .at(Location::at(path, item.ident.span()))
                        .help(format!("write `pub const {name}: u64 = 60;`")),
                    );
                    continue;
                }
                diagnostics.extend(
                    handler::check_non_fn(&item.ident, "static")
                        .map(|p| problem(path, &p))
                        .or_else(|| unknown_config(path, &item.vis, &item.ident)),
                );
            }
            Item::Macro(item) if attr::is_middleware_macro(&item.mac) => {
                let list = item
                    .mac
                    .parse_body::<MiddlewareList>()
                    .map(|list| list.items);
                source.file_middleware = Some(
                    list.unwrap_or_default()
                        .iter()
                        .map(attr::Middleware::display)
                        .collect(),
                );
            }
            _ => {}
        }
    }

    if source.handlers.is_empty() && diagnostics.is_empty() {
        diagnostics.push(
            Diagnostic::new("`route.rs` exports no HTTP method handler")
                .in_file(path)
                .help(
                    "export at least one of `pub async fn GET`, `POST`, `PUT`, `PATCH`, `DELETE`, \
                     `HEAD` or `OPTIONS`; to keep code here without a route, move it to a `_private` folder",
                ),
        );
    }
    if let Some(location) = revalidate_at {
        if !source.handlers.iter().any(|h| h.method == Method::Get) {
            diagnostics.push(
                Diagnostic::new(
                    "`REVALIDATE` caches `GET` responses, but this route exports no `GET`",
                )
                .at(location)
                .help("remove `REVALIDATE`, or export `pub async fn GET`"),
            );
        }
    }
    for (method, location) in describes {
        match source.handlers.iter_mut().find(|h| h.method == method) {
            Some(handler) => handler.doc.described = true,
            None => diagnostics.push(
                Diagnostic::new(format!(
                    "`{DESCRIBE_PREFIX}{method}` describes `{method}`, but this route exports no `{method}`"
                ))
                .at(location)
                .help(format!(
                    "remove `{DESCRIBE_PREFIX}{method}`, or export `pub async fn {method}`"
                )),
            ),
        }
    }
    source.handlers.sort_by_key(|h| h.method);
    for pair in source.handlers.windows(2) {
        if pair[0].method == pair[1].method {
            diagnostics.push(
                Diagnostic::new(format!("handler `{}` is exported twice", pair[0].method))
                    .at(pair[0].location.clone())
                    .at(pair[1].location.clone())
                    .help("keep one of them"),
            );
        }
    }
    if diagnostics.is_empty() {
        Ok(source)
    } else {
        Err(diagnostics)
    }
}

/// Parses a folder's `middleware.rs`.
pub(crate) fn parse_middleware(
    path: &Path,
    contents: &str,
) -> Result<FolderMiddlewareSource, Vec<Diagnostic>> {
    let file = parse_file(path, contents)?;
    let mut found = None;
    let mut forms = Vec::new();
    for item in &file.items {
        match item {
            Item::Fn(func) if func.sig.ident == "middleware" => {
                forms.push(func.sig.ident.span());
                if !matches!(func.vis, Visibility::Public(_)) || func.sig.asyncness.is_none() {
                    return Err(vec![Diagnostic::new("folder middleware fn must be `pub async`")
                        .at(Location::at(path, func.sig.ident.span()))
                        .help("declare it `pub async fn middleware(request: Request, next: Next) -> Response`")]);
                }
                found = Some(FolderMiddlewareSource::Fn);
            }
            Item::Macro(item) if attr::is_middleware_macro(&item.mac) => {
                forms.push(
                    item.mac
                        .path
                        .segments
                        .last()
                        .map_or_else(proc_macro2::Span::call_site, |s| s.ident.span()),
                );
                let list = item
                    .mac
                    .parse_body::<MiddlewareList>()
                    .map(|list| list.items);
                found = Some(FolderMiddlewareSource::List(
                    list.unwrap_or_default()
                        .iter()
                        .map(attr::Middleware::display)
                        .collect(),
                ));
            }
            _ => {}
        }
    }
    if let [first, second, ..] = forms.as_slice() {
        return Err(vec![Diagnostic::new(
            "`middleware.rs` declares its middleware more than once",
        )
        .at(Location::at(path, *first))
        .at(Location::at(path, *second))
        .help("keep one declaration: a `pub async fn middleware`, or one `arbor::middleware!(..)` list (which can name the fn)")]);
    }
    found.ok_or_else(|| {
        vec![Diagnostic::new("`middleware.rs` declares no middleware")
            .in_file(path)
            .help(
                "export `pub async fn middleware(request: Request, next: Next) -> Response`, \
                 or list middleware with `arbor::middleware!(first, second);`",
            )]
    })
}

fn parse_file(path: &Path, contents: &str) -> Result<syn::File, Vec<Diagnostic>> {
    syn::parse_file(contents).map_err(|error| {
        vec![
            Diagnostic::new(format!("could not parse `{}`: {error}", file_name(path)))
                .at(Location::at(path, error.span()))
                .help("fix the syntax error; rustc will show more detail once it parses"),
        ]
    })
}

/// `GET` for `describe_GET`.
fn describe_method(ident: &syn::Ident) -> Option<Method> {
    Method::from_export(ident.to_string().strip_prefix(DESCRIBE_PREFIX)?)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A `pub const` or `pub static` that looks like segment config but is not one Arbor reads
/// (`revalidate`, `MAX_DURATIONS`, `DYNAMIC`): it would be silently ignored.
fn unknown_config(path: &Path, vis: &Visibility, ident: &syn::Ident) -> Option<Diagnostic> {
    if !matches!(vis, Visibility::Public(_)) {
        return None;
    }
    let (message, help) = config::unknown_config(&ident.to_string())?;
    Some(
        Diagnostic::new(message)
            .at(Location::at(path, ident.span()))
            .help(help),
    )
}

/// A broken handler rule, as a diagnostic at the token it is about.
fn problem(path: &Path, problem: &Problem) -> Diagnostic {
    Diagnostic::new(problem.message())
        .at(Location::at(path, problem.span))
        .help(problem.help())
}

fn use_leaf_names(tree: &syn::UseTree) -> Vec<(String, proc_macro2::Span)> {
    match tree {
        syn::UseTree::Path(p) => use_leaf_names(&p.tree),
        syn::UseTree::Name(n) => vec![(n.ident.to_string(), n.ident.span())],
        syn::UseTree::Rename(r) => vec![(r.rename.to_string(), r.rename.span())],
        syn::UseTree::Group(g) => g.items.iter().flat_map(use_leaf_names).collect(),
        syn::UseTree::Glob(_) => Vec::new(),
    }
}

/// `Path<T>` (any path ending in `Path`) → the shape of `T`, if the file says enough.
fn path_params_shape(ty: &Type, structs: &[&syn::ItemStruct]) -> Option<ParamsShape> {
    let Type::Path(type_path) = ty else {
        return None;
    };
    let last = type_path.path.segments.last()?;
    if last.ident != "Path" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    let Some(syn::GenericArgument::Type(inner)) = args.args.first() else {
        return None;
    };
    match inner {
        Type::Tuple(tuple) => Some(ParamsShape::Tuple(tuple.elems.len())),
        Type::Path(inner_path) if inner_path.qself.is_none() => {
            let name = inner_path.path.segments.last()?.ident.to_string();
            if inner_path.path.segments.len() == 1 {
                if let Some(item) = structs.iter().find(|s| s.ident == name) {
                    return struct_shape(item);
                }
            }
            is_scalar(&name).then_some(ParamsShape::Single(name))
        }
        _ => None,
    }
}

fn struct_shape(item: &syn::ItemStruct) -> Option<ParamsShape> {
    if serde_container_attr_present(&item.attrs) {
        // `rename_all`, `flatten` or similar: serde decides the names, not the fields.
        return None;
    }
    match &item.fields {
        syn::Fields::Named(fields) => {
            let mut names = Vec::new();
            for field in &fields.named {
                let ident = field.ident.as_ref()?;
                if serde_field_attr(&field.attrs, "flatten").is_some() {
                    return None;
                }
                let name = serde_field_attr(&field.attrs, "rename")
                    .unwrap_or_else(|| ident.to_string().trim_start_matches("r#").to_owned());
                names.push(name);
            }
            Some(ParamsShape::Struct {
                name: item.ident.to_string(),
                fields: names,
            })
        }
        syn::Fields::Unnamed(fields) => Some(ParamsShape::Tuple(fields.unnamed.len())),
        syn::Fields::Unit => None,
    }
}

fn serde_container_attr_present(attrs: &[syn::Attribute]) -> bool {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("serde"))
        .any(|a| {
            let mut found = false;
            let _ = a.parse_nested_meta(|meta| {
                found |= meta.path.is_ident("rename_all") || meta.path.is_ident("transparent");
                if meta.input.peek(syn::Token![=]) {
                    meta.value()?.parse::<syn::Expr>()?;
                }
                Ok(())
            });
            found
        })
}

/// The value of `#[serde(key = "value")]` on a field (`Some("")` for a bare `#[serde(key)]`).
fn serde_field_attr(attrs: &[syn::Attribute], key: &str) -> Option<String> {
    let mut value = None;
    for attribute in attrs.iter().filter(|a| a.path().is_ident("serde")) {
        let _ = attribute.parse_nested_meta(|meta| {
            let is_key = meta.path.is_ident(key);
            if meta.input.peek(syn::Token![=]) {
                let expr: syn::Expr = meta.value()?.parse()?;
                if is_key {
                    if let syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(s),
                        ..
                    }) = expr
                    {
                        value = Some(s.value());
                    }
                }
            } else if is_key {
                value = Some(String::new());
            }
            Ok(())
        });
    }
    value
}

fn is_scalar(name: &str) -> bool {
    matches!(
        name,
        "String"
            | "Uuid"
            | "Vec"
            | "bool"
            | "char"
            | "u8"
            | "u16"
            | "u32"
            | "u64"
            | "u128"
            | "usize"
            | "i8"
            | "i16"
            | "i32"
            | "i64"
            | "i128"
            | "isize"
            | "f32"
            | "f64"
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn route(src: &str) -> Result<RouteSource, Vec<String>> {
        parse_route(Path::new("app/api/x/route.rs"), src)
            .map_err(|ds| ds.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn success_statuses_are_read_from_what_the_body_answers() {
        let source = route(
            "pub async fn POST() -> Result<(StatusCode, Json<U>), ApiError> { Ok((StatusCode::CREATED, Json(u))) }\n\
             pub async fn DELETE() -> Result<StatusCode, ApiError> { gone()?; Ok(StatusCode::NO_CONTENT) }\n\
             pub async fn PUT() -> StatusCode { if x { return StatusCode::ACCEPTED; } StatusCode::NO_CONTENT }\n\
             pub async fn GET() -> StatusCode { if x == StatusCode::NOT_FOUND { } StatusCode::OK }\n\
             pub async fn PATCH() -> StatusCode { match x { A => StatusCode::OK, _ => { StatusCode::ACCEPTED } } }",
        )
        .unwrap();
        let statuses: Vec<(String, Vec<u16>)> = source
            .handlers
            .iter()
            .map(|h| (h.method.to_string(), h.doc.success_statuses.clone()))
            .collect();
        assert_eq!(
            statuses,
            [
                ("GET".to_owned(), vec![200]),
                ("POST".to_owned(), vec![201]),
                ("PUT".to_owned(), vec![202, 204]),
                ("PATCH".to_owned(), vec![200, 202]),
                ("DELETE".to_owned(), vec![204]),
            ]
        );
    }

    #[test]
    fn a_describe_fn_marks_its_handler_and_needs_one() {
        let source = route(
            "pub async fn GET() {}\npub async fn POST() {}\npub fn describe_POST(operation: &mut arbor::openapi::DocumentBuilder) {}",
        )
        .unwrap();
        let described: Vec<bool> = source.handlers.iter().map(|h| h.doc.described).collect();
        assert_eq!(described, [false, true], "GET, then POST");

        let errors = route(
            "pub async fn GET() {}\nfn describe_GET(o: &mut D) {}\npub fn describe_PATCH(o: &mut D) {}",
        )
        .unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:#?}");
        assert!(
            errors[0].contains("`describe_GET` must be `pub`"),
            "{}",
            errors[0]
        );
        assert!(
            errors[1]
                .contains("`describe_PATCH` describes `PATCH`, but this route exports no `PATCH`"),
            "{}",
            errors[1]
        );
        assert!(errors[1].contains("help: remove `describe_PATCH`, or export `pub async fn PATCH`"));
    }

    #[test]
    fn finds_exported_handlers_in_allow_order() {
        let source = route(
            "pub async fn POST() {}\n#[arbor::handler(auth, rate_limit(limit = 5))]\npub async fn GET() {}\nfn helper() {}\npub use crate::shared::ping as DELETE;",
        )
        .unwrap();
        let methods: Vec<Method> = source.handlers.iter().map(|h| h.method).collect();
        assert_eq!(methods, [Method::Get, Method::Post, Method::Delete]);
        assert_eq!(
            source.handlers[0].middleware.as_deref(),
            Some(&["auth".to_owned(), "rate_limit(limit = 5)".to_owned()][..])
        );
        assert_eq!(source.handlers[0].location.line_col, Some((3, 14)));
    }

    #[test]
    fn reports_every_bad_export_with_its_line() {
        let errors = route(
            "pub async fn get() {}\nasync fn POST() {}\npub fn PUT() {}\npub const DELETE: u8 = 0;",
        )
        .unwrap_err();
        assert_eq!(errors.len(), 4, "{errors:#?}");
        assert!(
            errors[0].contains("`get` looks like a handler")
                && errors[0].contains("x/route.rs:1:14")
        );
        assert!(errors[1].contains("handler `POST` is not public") && errors[1].contains(":2:10"));
        assert!(errors[2].contains("handler `PUT` is not async") && errors[2].contains(":3:8"));
        assert!(errors[3].contains("`DELETE` must be an async fn, not a const"));
    }

    #[test]
    fn reads_segment_config_and_checks_its_type() {
        let source = route("pub const MAX_DURATION: u64 = 30;\npub const REVALIDATE: u64 = 60;\npub async fn GET() {}").unwrap();
        assert_eq!(
            source.config,
            SegmentConfig {
                max_duration: true,
                revalidate: true
            }
        );
        let errors = route(
            "const MAX_DURATION: u64 = 30;\npub const REVALIDATE: u32 = 1;\npub async fn POST() {}",
        )
        .unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:#?}");
        assert!(
            errors[0].contains("segment config `MAX_DURATION` must be a `pub const` of type `u64`")
        );
        assert!(errors[1].contains("segment config `REVALIDATE`"));
        let errors = route("pub const REVALIDATE: u64 = 60;\npub async fn POST() {}").unwrap_err();
        assert!(errors[0].contains("exports no `GET`"), "{errors:?}");
        for ty in ["Revalidate", "arbor::cache::Revalidate"] {
            let source = route(&format!(
                "pub const REVALIDATE: {ty} = Revalidate::every(60);\npub async fn GET() {{}}"
            ))
            .unwrap();
            assert!(source.config.revalidate, "{ty}");
        }
        let errors = route(
            "pub const MAX_DURATION: Revalidate = Revalidate::every(1);\npub async fn GET() {}",
        )
        .unwrap_err();
        assert!(errors[0].contains("`MAX_DURATION` must be a `pub const` of type `u64`"));
    }

    #[test]
    fn reports_no_exports_and_syntax_errors() {
        let errors = route("fn helper() {}").unwrap_err();
        assert!(
            errors[0].contains("exports no HTTP method handler"),
            "{errors:?}"
        );
        let errors = route("pub async fn GET() {\n  let x = ;\n}").unwrap_err();
        assert!(
            errors[0].contains("could not parse `route.rs`")
                && errors[0].contains("x/route.rs:2:11"),
            "{errors:?}"
        );
    }

    #[test]
    fn reads_the_shape_of_path_params() {
        let source = route(
            "#[derive(Deserialize)] struct P { #[serde(rename = \"id\")] user_id: u64, r#type: String }\n\
             pub async fn GET(Path(p): Path<P>) {}\n\
             pub async fn PUT(axum::extract::Path((a, b)): axum::extract::Path<(u64, String)>) {}\n\
             pub async fn DELETE(Path(id): Path<u64>) {}\n\
             pub async fn POST(Path(x): Path<Imported>) {}",
        )
        .unwrap();
        let shapes: Vec<Option<ParamsShape>> = source
            .handlers
            .iter()
            .map(|h| h.path_params.clone())
            .collect();
        assert_eq!(
            shapes,
            [
                Some(ParamsShape::Struct {
                    name: "P".into(),
                    fields: vec!["id".into(), "type".into()]
                }),
                None,
                Some(ParamsShape::Tuple(2)),
                Some(ParamsShape::Single("u64".into())),
            ]
        );
    }

    #[test]
    fn folder_middleware_needs_a_fn_or_a_list() {
        let path = Path::new("app/api/(auth)/middleware.rs");
        assert_eq!(
            parse_middleware(
                path,
                "pub async fn middleware(r: Request, n: Next) -> Response { n.run(r).await }"
            ),
            Ok(FolderMiddlewareSource::Fn)
        );
        assert_eq!(
            parse_middleware(path, "arbor::middleware!(csrf, rate_limit(limit = 5));"),
            Ok(FolderMiddlewareSource::List(vec![
                "csrf".into(),
                "rate_limit(limit = 5)".into()
            ]))
        );
        let errors = parse_middleware(
            path,
            "pub async fn middleware(r: Request, n: Next) -> Response { n.run(r).await }\narbor::middleware!(csrf);",
        )
        .unwrap_err();
        assert!(errors[0]
            .to_string()
            .contains("declares its middleware more than once"));
        assert_eq!(errors[0].locations()[1].line_col, Some((2, 8)));
        let errors = parse_middleware(path, "fn nothing() {}").unwrap_err();
        assert!(errors[0].to_string().contains("declares no middleware"));
    }
}
