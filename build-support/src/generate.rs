//! Code emission: the route table turned into a readable Rust module. No I/O happens here.

use std::collections::BTreeSet;
use std::path::Path;

use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote};

use crate::diagnostic::display_path;
use crate::model::{Route, RouteTable};
use crate::segment::Segment;
use crate::source::{FolderMiddlewareSource, Method};

/// What the generated module is built with.
pub(crate) struct Options<'a> {
    /// Absolute crate root: route files are included from below it by absolute `#[path]`.
    pub manifest_dir: &'a Path,
    /// Prefix of every URL (`/api`).
    pub url_prefix: &'a str,
    /// The router's state type.
    pub state: syn::Type,
    /// Whether to generate `openapi()`.
    pub openapi: bool,
}

/// Generates the module's tokens: route modules, the route table and `router()`.
pub(crate) fn generate(table: &RouteTable, options: &Options<'_>) -> TokenStream {
    let mut names = UniqueNames::default();
    let middleware_modules: Vec<Ident> = table
        .middleware
        .iter()
        .map(|m| names.claim("middleware", &m.segments))
        .collect();
    let route_modules: Vec<Ident> = table
        .routes
        .iter()
        .map(|r| names.claim("route", &r.segments))
        .collect();

    let module_items = table
        .middleware
        .iter()
        .zip(&middleware_modules)
        .map(|(m, module)| {
            let path = absolute(options.manifest_dir, &m.file);
            let doc = format!(" Folder middleware from `{}`.", display_path(&m.file));
            // A fn goes through a wrapper whose type errors name the file (see `__private`).
            let wrapper = matches!(m.source, FolderMiddlewareSource::Fn).then(|| {
                let name = folder_fn_wrapper(module);
                let message = format!(
                    "`{{Self}}` in `{}` cannot be used as folder middleware",
                    display_path(&m.file)
                );
                quote! {
                    ::arbor::__private::folder_middleware!(State, fn #name = #module::middleware, #message);
                }
            });
            quote! {
                #[doc = #doc]
                #[path = #path]
                pub mod #module;
                #wrapper
            }
        })
        .chain(
            table
                .routes
                .iter()
                .zip(&route_modules)
                .map(|(route, module)| {
                    let path = absolute(options.manifest_dir, &route.file);
                    let methods: Vec<&str> =
                        route.handlers.iter().map(|h| h.method.as_str()).collect();
                    let doc = format!(
                        " `{} {}` from `{}`.",
                        methods.join(", "),
                        route.display_url(options.url_prefix),
                        display_path(&route.file)
                    );
                    quote! {
                        #[doc = #doc]
                        #[path = #path]
                        pub mod #module;
                    }
                }),
        );

    let patterns = table
        .routes
        .iter()
        .flat_map(|route| route.axum_patterns(options.url_prefix));

    let route_infos = table.routes.iter().flat_map(|route| {
        let url = route.display_url(options.url_prefix);
        let file = display_path(&route.file);
        route.handlers.iter().map(move |handler| {
            let method = handler.method.as_str();
            let chain = middleware_chain(table, route, handler.middleware.as_deref());
            quote! {
                ::arbor::RouteInfo {
                    method: #method,
                    path: #url,
                    file: #file,
                    middleware: &[#(#chain),*],
                }
            }
        })
    });

    let route_statements = table
        .routes
        .iter()
        .zip(&route_modules)
        .map(|(route, module)| {
            let allow = route
                .allow()
                .iter()
                .map(|m| m.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            let automatic_options = !route.handlers.iter().any(|h| h.method == Method::Options);
            let handlers = route.handlers.iter().map(|handler| {
                let method = handler.method.as_str();
                let export = Ident::new(method, Span::call_site());
                let routing_fn = Ident::new(&method.to_ascii_lowercase(), Span::call_site());
                let revalidate = handler.method == Method::Get && route.config.revalidate;
                if handler.middleware.is_none() && !revalidate {
                    return quote! { .#routing_fn(handler(#module::#export)) };
                }
                let mut endpoint =
                    quote! { ::arbor::__private::axum::routing::#routing_fn(handler(#module::#export)) };
                if handler.middleware.is_some() {
                    let wrap = format_ident!("__arbor_handler_middleware_{}", method);
                    endpoint = quote! { #module::#wrap(#endpoint, &state) };
                }
                if revalidate {
                    // A macro, so that without arbor's `cache` feature the error names the file.
                    let file = display_path(&route.file);
                    endpoint = quote! {
                        ::arbor::__private::revalidate!(#file, #endpoint, #module::REVALIDATE)
                    };
                }
                quote! { .merge(#endpoint) }
            });
            let file_layer = route.file_middleware.is_some().then(|| {
                quote! { let methods = #module::__arbor_middleware(methods, &state); }
            });
            let folder_layers = route.folder_middleware.iter().rev().map(|&index| {
            let folder = &middleware_modules[index];
            match table.middleware[index].source {
                FolderMiddlewareSource::Fn => {
                    let wrapper = folder_fn_wrapper(folder);
                    quote! { let methods = #wrapper(methods, &state); }
                }
                FolderMiddlewareSource::List(_) => quote! {
                    let methods = #folder::__arbor_middleware(methods, &state);
                },
            }
        });
            // Outermost: the route's maximum duration covers its middleware too. Routes without
            // one get no layer; the app-wide default applies to them (see `arbor::App`).
            let max_duration = route.config.max_duration.then(|| {
                quote! {
                    let methods = ::arbor::__private::max_duration(methods, #module::MAX_DURATION);
                }
            });
            let patterns = route.axum_patterns(options.url_prefix);
            let register = match patterns.as_slice() {
                [single] => quote! { router = router.route(#single, methods); },
                [bare, rest] => {
                    quote! { router = router.route(#bare, methods.clone()).route(#rest, methods); }
                }
                _ => unreachable!("a route has one or two patterns"),
            };
            let doc = format!(
                "{} -> {}",
                route.display_url(options.url_prefix),
                display_path(&route.file)
            );
            // `handler(..)` checks each handler with this message, which names the file: rustc
            // would otherwise report an unmet `Handler` bound in the generated file.
            let handler_message = format!(
                "`{{Self}}` exported by `{}` is not a handler",
                display_path(&route.file)
            );
            quote! {
                {
                    #[doc = #doc]
                    const ALLOW: &str = #allow;
                ::arbor::__private::handlers!(State, #handler_message);
                    let methods = ::arbor::__private::MethodRouter::new() #(#handlers)*;
                    let methods = ::arbor::__private::finish_route(methods, ALLOW, #automatic_options);
                    #file_layer
                    #(#folder_layers)*
                    #max_duration
                    #register
                }
            }
        });

    let openapi = options
        .openapi
        .then(|| crate::openapi::openapi_fn(table, options, &route_modules));
    let operations =
        crate::operations::operations_static(table, options.url_prefix, &route_modules);
    let state = &options.state;
    // Middleware fns run with the router's state (`from_fn_with_state`), so the routes are
    // built with it in hand, and `router` gives back a router whose state is provided. With
    // the default `()`, there is nothing to ask for.
    let is_unit = matches!(state, syn::Type::Tuple(tuple) if tuple.elems.is_empty());
    let mut router_doc = vec![
        " The router for every route file, with JSON `404`/`405` answers and automatic",
        " `HEAD` and `OPTIONS`.",
    ];
    let (parameter, binding) = if is_unit {
        (quote!(), quote! { let state: State = (); })
    } else {
        router_doc[1] =
            " `HEAD` and `OPTIONS`. Handlers and middleware extract `state` with `State<..>`.";
        (quote!(state: State), quote!())
    };
    quote! {
        /// The state type handlers and middleware extract with `State<..>`.
        pub type State = #state;

        #(#module_items)*

        /// Every exported handler: method, URL (folder notation), source file and middleware
        /// chain (outermost first), in match-priority order.
        pub static ROUTES: &[::arbor::RouteInfo] = &[#(#route_infos),*];

        /// The router's URL patterns in axum's syntax, for `arbor::App::route_patterns`.
        pub const PATTERNS: &[&str] = &[#(#patterns),*];

        #(#[doc = #router_doc])*
        pub fn router(#parameter) -> ::arbor::__private::axum::Router {
            #binding
            let mut router = ::arbor::__private::axum::Router::new();
            #(#route_statements)*
            router.fallback(::arbor::__private::not_found).with_state(state)
        }

        #operations

        #openapi
    }
}

/// Every exported handler under each URL pattern of its route (an optional catch-all has two),
/// with the route and its module: one operation of the contract and of `OPERATIONS` each.
pub(crate) fn operations<'a>(
    table: &'a RouteTable,
    url_prefix: &'a str,
    modules: &'a [Ident],
) -> impl Iterator<Item = (&'a Route, &'a Ident, &'a crate::source::Handler, String)> + 'a {
    table
        .routes
        .iter()
        .zip(modules)
        .flat_map(move |(route, module)| {
            route
                .axum_patterns(url_prefix)
                .into_iter()
                .flat_map(move |pattern| {
                    route
                        .handlers
                        .iter()
                        .map(move |handler| (route, module, handler, pattern.clone()))
                })
        })
}

/// The middleware around a handler, outermost first: folders, then the file, then the fn.
pub(crate) fn middleware_chain(
    table: &RouteTable,
    route: &Route,
    handler: Option<&[String]>,
) -> Vec<String> {
    let mut chain = Vec::new();
    for &index in &route.folder_middleware {
        let folder = &table.middleware[index];
        match &folder.source {
            FolderMiddlewareSource::Fn => {
                chain.push(format!("{}::middleware", display_path(&folder.file)))
            }
            FolderMiddlewareSource::List(list) => chain.extend(list.iter().cloned()),
        }
    }
    chain.extend(route.file_middleware.iter().flatten().cloned());
    chain.extend(handler.into_iter().flatten().cloned());
    chain
}

/// The wrapper that layers a folder's `middleware` fn: `layer_middleware_auth`.
fn folder_fn_wrapper(module: &Ident) -> Ident {
    format_ident!("layer_{}", module)
}

fn absolute(manifest_dir: &Path, file: &Path) -> String {
    manifest_dir.join(file).to_string_lossy().into_owned()
}

/// Readable, unique module names derived from the folders: `route_api_users_id`.
#[derive(Default)]
struct UniqueNames {
    taken: BTreeSet<String>,
}

impl UniqueNames {
    fn claim(&mut self, kind: &str, segments: &[Segment]) -> Ident {
        let mut base = kind.to_owned();
        for segment in segments {
            let word = match segment {
                Segment::Static(s) | Segment::Group(s) => s.as_str(),
                Segment::Dynamic(p) | Segment::CatchAll(p) | Segment::OptionalCatchAll(p) => {
                    p.as_str()
                }
            };
            base.push('_');
            base.extend(word.chars().map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            }));
        }
        let mut name = base.clone();
        let mut counter = 2;
        while !self.taken.insert(name.clone()) {
            name = format!("{base}_{counter}");
            counter += 1;
        }
        Ident::new(&name, Span::call_site())
    }
}
