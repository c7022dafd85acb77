//! A handler fn's argument tuple and output, as types: what the contract (`arbor::openapi`)
//! and the typed clients (`arbor::client`) read from the fn item itself, since neither can
//! name the types a route file wrote under its own imports.

use std::future::Future;

/// The argument tuple and the output of a handler fn. Every `async fn` of up to 12 arguments
/// has exactly one, so `Arguments` is inferred from the fn item alone.
pub trait Signature<Arguments> {
    /// What the fn's future resolves to.
    type Output;
}

macro_rules! signature {
    ($($argument:ident),*) => {
        impl<F, Fut, $($argument,)*> Signature<($($argument,)*)> for F
        where
            F: FnOnce($($argument),*) -> Fut,
            Fut: Future,
        {
            type Output = Fut::Output;
        }
    };
}

signature!();
signature!(T1);
signature!(T1, T2);
signature!(T1, T2, T3);
signature!(T1, T2, T3, T4);
signature!(T1, T2, T3, T4, T5);
signature!(T1, T2, T3, T4, T5, T6);
signature!(T1, T2, T3, T4, T5, T6, T7);
signature!(T1, T2, T3, T4, T5, T6, T7, T8);
signature!(T1, T2, T3, T4, T5, T6, T7, T8, T9);
signature!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10);
signature!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11);
signature!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12);
