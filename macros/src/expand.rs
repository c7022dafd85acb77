//! Checks and expansion for `#[handler]` and `middleware!`.

use arbor_syntax::attr::{Middleware, MiddlewareList};
use arbor_syntax::handler::{self, Context};
use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;

pub(crate) fn handler(args: TokenStream, item: TokenStream) -> TokenStream {
    let Ok(func) = syn::parse2::<syn::ItemFn>(item.clone()) else {
        let error = syn::Error::new_spanned(
            item_head(&item),
            "`#[arbor::handler]` goes on a route handler such as `pub async fn GET(..)`",
        );
        return with_errors(&item, error);
    };
    let mut errors: Option<syn::Error> = None;
    let mut report = |error: syn::Error| match &mut errors {
        Some(errors) => errors.combine(error),
        None => errors = Some(error),
    };

    // The same rules, and words, as the build step's scan of the route file.
    let checked = handler::check_fn(&func.vis, &func.sig, Context::Attribute);
    for problem in &checked.problems {
        report(problem.to_syn_error());
    }
    let method = checked.method;
    let list = match parse_list(args, "`#[arbor::handler(..)]`") {
        Ok(list) => Some(list),
        Err(error) => {
            report(error);
            None
        }
    };
    if let Some(error) = errors {
        return with_errors(&quote!(#func), error);
    }
    let (Some(list), Some(_)) = (list, method) else {
        unreachable!("errors were reported above");
    };

    let wrapper = format_ident!("__arbor_handler_middleware_{}", func.sig.ident);
    let layers = list.items.iter().rev().map(|middleware| {
        let layer = layer_expr(middleware);
        quote! { let route = route.route_layer(#layer); }
    });
    let wrapper_fn = wrapper_fn(&wrapper, &list, quote!(#(#layers)*));
    quote! {
        #func

        #[allow(non_snake_case)]
        #wrapper_fn
    }
}

pub(crate) fn middleware(input: TokenStream) -> TokenStream {
    let list = match parse_list(input, "`arbor::middleware!(..)`") {
        Ok(list) => list,
        Err(error) => return error.into_compile_error(),
    };
    // `route_layer`: a method the route does not have is answered `405` by its fallback, which
    // no middleware sees (see `arbor::__private::finish_route`). Naming the router's type keeps
    // every step's error `Infallible`.
    let layers = list.items.iter().rev().map(|middleware| {
        let layer = layer_expr(middleware);
        quote! { let route: ::arbor::__private::MethodRouter<_> = route.route_layer(#layer); }
    });
    let wrapper = format_ident!("__arbor_middleware");
    wrapper_fn(&wrapper, &list, quote!(#(#layers)*))
}

/// `wrapper(route, &state)`: the route with the list's layers, called by the generated router.
///
/// A middleware fn runs with the router's state, so that it can take `State<..>` and any
/// extractor of that state (as `from_fn_with_state` allows). Its extractors are checked
/// against one state type, so a wrapper that lists a fn is not generic: it names the state
/// of the generated `routes` module, whose child every route file and folder `middleware.rs`
/// is (`super::State`). A list of constructors only stays generic over the state.
fn wrapper_fn(wrapper: &syn::Ident, list: &MiddlewareList, layers: TokenStream) -> TokenStream {
    let support = fn_support(list);
    let signature = if support.is_empty() {
        quote! {
            pub fn #wrapper<S>(
                route: ::arbor::__private::MethodRouter<S>,
                state: &S,
            ) -> ::arbor::__private::MethodRouter<S>
            where
                S: ::core::clone::Clone + ::core::marker::Send + ::core::marker::Sync + 'static,
        }
    } else {
        quote! {
            pub fn #wrapper(
                route: ::arbor::__private::MethodRouter<super::State>,
                state: &super::State,
            ) -> ::arbor::__private::MethodRouter<super::State>
        }
    };
    quote! {
        #[doc(hidden)]
        #[allow(unused_variables)]
        #signature
        {
            #support
            #layers
            route
        }
    }
}

fn parse_list(tokens: TokenStream, what: &str) -> syn::Result<MiddlewareList> {
    if tokens.is_empty() {
        return Err(syn::Error::new(
            Span::call_site(),
            format!("{what} lists no middleware: name at least one, such as `require_user`, or remove it"),
        ));
    }
    syn::parse2(tokens)
}

/// The layer for one entry, spanned on the user's tokens so type errors point at them.
fn layer_expr(middleware: &Middleware) -> TokenStream {
    match middleware {
        Middleware::Fn(path) => {
            let span = path.span();
            quote_spanned!(span=> __ArborMiddlewareFn::<super::State, _, _>::into_layer(
                #path,
                ::core::clone::Clone::clone(state),
            ))
        }
        Middleware::Constructor {
            func,
            positional,
            named,
        } => {
            // Bound first, so that the value checked is spanned on the constructor's name
            // rather than on a call expression that ends in macro-made tokens.
            let span = func.span();
            let setters = named
                .iter()
                .map(|(name, value)| quote_spanned!(name.span()=> .#name(#value)));
            quote_spanned! {span=> {
                let layer = #func(#(#positional),*) #(#setters)*;
                ::arbor::__private::layer(layer)
            }}
        }
    }
}

/// Items that turn a middleware fn into a layer, emitted inside a wrapper that lists one.
///
/// Through `from_fn_with_state` directly, a fn of the wrong shape, or one whose extractors
/// need another state, is reported as "`FromFn<..>` does not implement `Service`" with axum's
/// internals listed. Here the fn itself must implement `__ArborMiddlewareFn`, whose
/// `on_unimplemented` message speaks of the user's fn and of the router's state. The second,
/// impossible impl matters: with two candidate impls and neither applying, rustc reports the
/// trait itself (one error, this message) instead of the unmet bound inside the only impl; and
/// the layer type being a projection of the failed bound, no error cascades into `route_layer`.
fn fn_support(list: &MiddlewareList) -> TokenStream {
    if !list.items.iter().any(|m| matches!(m, Middleware::Fn(_))) {
        return TokenStream::new();
    }
    quote! {
        #[diagnostic::on_unimplemented(
            message = "`{Self}` cannot be used as middleware",
            label = "not an async fn `(Request, Next) -> impl IntoResponse` with extractors of the router's state `{S}`",
            note = "a middleware fn is an `async fn` taking any extractors (`State<{S}>`, `HeaderMap`, ...), then `arbor::Request`, then `arbor::Next`, that returns `impl IntoResponse` and whose future is `Send`",
            note = "to use a tower `Layer`, call its constructor: `#[arbor::handler(my_layer())]`"
        )]
        trait __ArborMiddlewareFn<S, T, K> {
            type Layer;
            fn into_layer(self, state: S) -> Self::Layer;
        }
        enum __ArborFromFn {}
        enum __ArborNever {}
        trait __ArborImpossible {}
        impl<F, S, T> __ArborMiddlewareFn<S, T, __ArborFromFn> for F
        where
            ::arbor::__private::axum::middleware::FromFnLayer<F, S, T>:
                ::arbor::__private::MiddlewareLayer,
        {
            type Layer = ::arbor::__private::axum::middleware::FromFnLayer<F, S, T>;
            fn into_layer(self, state: S) -> Self::Layer {
                ::arbor::__private::from_fn_with_state(state, self)
            }
        }
        impl<F: __ArborImpossible, S> __ArborMiddlewareFn<S, (), __ArborNever> for F {
            type Layer = F;
            fn into_layer(self, _: S) -> F {
                self
            }
        }
    }
}

/// The item up to its name (`pub struct GET`), so that an error about the item as a whole
/// does not underline its entire body.
fn item_head(item: &TokenStream) -> TokenStream {
    macro_rules! head {
        ($item:expr, $token:ident) => {{
            let (vis, token, ident) = (&$item.vis, &$item.$token, &$item.ident);
            quote!(#vis #token #ident)
        }};
    }
    match syn::parse2::<syn::Item>(item.clone()) {
        Ok(syn::Item::Struct(s)) => head!(s, struct_token),
        Ok(syn::Item::Enum(e)) => head!(e, enum_token),
        Ok(syn::Item::Union(u)) => head!(u, union_token),
        Ok(syn::Item::Trait(t)) => head!(t, trait_token),
        Ok(syn::Item::Type(t)) => head!(t, type_token),
        Ok(syn::Item::Const(c)) => head!(c, const_token),
        Ok(syn::Item::Static(s)) => head!(s, static_token),
        Ok(syn::Item::Mod(m)) => head!(m, mod_token),
        Ok(syn::Item::Impl(i)) => i.impl_token.into_token_stream(),
        _ => item.clone(),
    }
}

/// The item as written plus the errors, so that one mistake does not cascade into
/// "cannot find function" errors elsewhere.
fn with_errors(item: &TokenStream, error: syn::Error) -> TokenStream {
    let errors = error.into_compile_error();
    quote! {
        #item
        #errors
    }
}
