//! A request's extension map, allocated once at the size the stack fills it to.

use http::Extensions;

/// An empty [`Extensions`] with room for 14 entries, to clone into each request.
///
/// A request collects about ten extensions on its way through the production stack (the
/// connection's address, the shutdown handle, the request id, the client address, the
/// deadline, the matched route, axum's URL params, ...). Filled one by one from empty, the map is
/// reallocated and rehashed at the 4th and the 8th entry; cloning this one costs a single
/// allocation of the final size instead. `Extensions` has no `with_capacity`, so the room is
/// made by inserting placeholders and clearing them, which keeps the capacity.
pub(super) fn presized_extensions() -> Extensions {
    #[derive(Clone, Copy)]
    struct Placeholder<const N: usize>;

    let mut extensions = Extensions::new();
    // The 8th entry grows the map to its 14-entry size.
    extensions.insert(Placeholder::<0>);
    extensions.insert(Placeholder::<1>);
    extensions.insert(Placeholder::<2>);
    extensions.insert(Placeholder::<3>);
    extensions.insert(Placeholder::<4>);
    extensions.insert(Placeholder::<5>);
    extensions.insert(Placeholder::<6>);
    extensions.insert(Placeholder::<7>);
    extensions.clear();
    extensions
}

#[cfg(test)]
mod tests {
    use super::presized_extensions;

    #[test]
    fn starts_empty_and_merges_into_what_the_request_has() {
        let presized = presized_extensions();
        assert!(presized.is_empty());
        let mut extensions = http::Extensions::new();
        extensions.insert(7_u32);
        extensions.extend(presized.clone());
        assert_eq!(extensions.get::<u32>(), Some(&7));
        let mut fresh = http::Extensions::new();
        fresh.extend(presized);
        fresh.insert("kept");
        assert_eq!(fresh.get::<&str>(), Some(&"kept"));
        assert_eq!(fresh.len(), 1);
    }
}
