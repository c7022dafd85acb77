//! A tree of route files, one folder path per line: it is refused with errors naming the files,
//! or its patterns go into an axum router without a panic, each route's URL reaches that route,
//! and the generated source parses.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// Folder paths a file system can hold: up to 6 routes of up to 4 folders.
fn routes(text: &str) -> Vec<Vec<&str>> {
    text.lines()
        .take(6)
        .map(|line| {
            line.split('/')
                .filter(|name| !matches!(*name, "" | "." | "..") && name.len() <= 40)
                .filter(|name| !name.contains('\0'))
                .take(4)
                .collect()
        })
        .collect()
}

fuzz_target!(|text: &str| {
    arbor_fuzz::route_tree::routes_as_the_model_says(&routes(text));
});
