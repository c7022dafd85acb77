//! Checks and expansion for `#[handler]` and `middleware!`.

use arbor_build::attr::{Middleware, MiddlewareList};
use arbor_build::Method;
use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

pub(crate) fn handler(args: TokenStream, item: TokenStream) -> TokenStream {
    let Ok(func) = syn::parse2::<syn::ItemFn>(item.clone()) else {
        let error = syn::Error::new_spanned(
            &item,
            "`#[arbor::handler]` goes on a route handler such as `pub async fn GET(..)`",
        );
        return with_errors(&item, error);
    };
    let mut errors: Option<syn::Error> = None;
    let mut report = |error: syn::Error| match &mut errors {
        Some(errors) => errors.combine(error),
        None => errors = Some(error),
    };

    let name = func.sig.ident.to_string();
    let method = Method::from_export(&name);
    if method.is_none() {
        let message = match Method::ALL
            .iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(&name))
        {
            Some(method) => {
                format!("handlers are named in uppercase: rename `{name}` to `{method}`")
            }
            None => format!(
                "`#[arbor::handler]` goes on a handler named after an HTTP method \
                 (GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS), and `{name}` is not one"
            ),
        };
        report(syn::Error::new_spanned(&func.sig.ident, message));
    }
    if func.sig.asyncness.is_none() {
        report(syn::Error::new_spanned(
            func.sig.fn_token,
            format!("handler `{name}` must be async: write `pub async fn {name}`"),
        ));
    }
    if !matches!(func.vis, syn::Visibility::Public(_)) {
        report(syn::Error::new(
            func.sig.fn_token.span(),
            format!("handler `{name}` must be public: write `pub async fn {name}`"),
        ));
    }
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

    let wrapper = format_ident!("__arbor_handler_middleware_{}", name);
    let layers = list.items.iter().rev().map(|middleware| {
        let layer = layer_expr(middleware);
        quote! { let route = route.route_layer(#layer); }
    });
    quote! {
        #func

        #[doc(hidden)]
        #[allow(non_snake_case)]
        pub fn #wrapper<S>(
            route: ::arbor::__private::MethodRouter<S>,
        ) -> ::arbor::__private::MethodRouter<S>
        where
            S: ::core::clone::Clone + ::core::marker::Send + ::core::marker::Sync + 'static,
        {
            #(#layers)*
            route
        }
    }
}

pub(crate) fn middleware(input: TokenStream) -> TokenStream {
    let list = match parse_list(input, "`arbor::middleware!(..)`") {
        Ok(list) => list,
        Err(error) => return error.into_compile_error(),
    };
    let layers = list.items.iter().rev().map(|middleware| {
        let layer = layer_expr(middleware);
        quote! { let route = route.layer(#layer); }
    });
    quote! {
        #[doc(hidden)]
        pub fn __arbor_middleware<S>(
            route: ::arbor::__private::MethodRouter<S>,
        ) -> ::arbor::__private::MethodRouter<S>
        where
            S: ::core::clone::Clone + ::core::marker::Send + ::core::marker::Sync + 'static,
        {
            #(#layers)*
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
            quote_spanned!(span=> ::arbor::__private::from_fn(#path))
        }
        Middleware::Constructor {
            func,
            positional,
            named,
        } => {
            let span = func.span();
            let setters = named.iter().map(|(name, value)| quote!(.#name(#value)));
            quote_spanned!(span=> ::arbor::__private::layer(#func(#(#positional),*) #(#setters)*))
        }
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
