//! Property tests of the scanner: any folder name is classified or refused with a message
//! (never a panic), and any tree that validates becomes routes that axum accepts, where each
//! route's own URLs reach that route, and the generated source parses. `tests/user_crate_build.rs`
//! compiles and serves sample trees; this covers the trees nobody thought to write.

#![allow(clippy::unwrap_used)]

#[path = "../../framework/tests/property_support/mod.rs"]
mod property_support;
#[path = "support/route_tree.rs"]
mod route_tree;

use arbor_build::Segment;
use property_support::cases;
use proptest::prelude::*;

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn folder_names_are_classified_or_refused(name in ".{0,16}") {
        match Segment::parse(&name) {
            Ok(segment) => prop_assert_eq!(Segment::parse(&segment.to_string()), Ok(segment)),
            Err(error) => {
                prop_assert!(!error.problem.is_empty() && !error.help.is_empty());
                prop_assert_eq!(error.segment, name);
            }
        }
    }
}

/// Folder names from every kind, with the same names repeated so that trees collide.
fn folder() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "a",
        "b",
        "users",
        "%5Fx",
        "(g)",
        "(h)",
        "[id]",
        "[slug]",
        "[...rest]",
        "[[...opt]]",
    ])
}

fn tree() -> impl Strategy<Value = Vec<Vec<&'static str>>> {
    prop::collection::vec(prop::collection::vec(folder(), 0..4), 1..6)
}

proptest! {
    #![proptest_config(cases(96))]

    #[test]
    fn trees_that_validate_route_as_the_model_says(routes in tree()) {
        route_tree::routes_as_the_model_says(&routes);
    }
}
