//! The generated `OPERATIONS`: each handler fn with its method and URL pattern, for typed
//! calls (`arbor::client`). No I/O happens here.

use proc_macro2::{Ident, Span, TokenStream};
use quote::quote;

use crate::model::RouteTable;

/// `pub static OPERATIONS`, one entry a handler and pattern, in the route table's order.
pub(crate) fn operations_static(
    table: &RouteTable,
    url_prefix: &str,
    modules: &[Ident],
) -> TokenStream {
    let entries = crate::generate::operations(table, url_prefix, modules).map(
        |(_, module, handler, pattern)| {
            let method = handler.method.as_str();
            let export = Ident::new(method, Span::call_site());
            quote! {
                ::arbor::client::Operation::new(#method, #pattern, || {
                    ::arbor::client::type_id_of(&#module::#export)
                })
            }
        },
    );
    quote! {
        /// Every handler fn with its method and URL pattern: what typed calls
        /// (`arbor::test::TestClient::call`, `arbor::client::HttpClient`) find handlers in.
        #[allow(deprecated)]
        pub static OPERATIONS: ::arbor::client::Operations =
            ::arbor::client::Operations::new(&[#(#entries),*]);
    }
}
