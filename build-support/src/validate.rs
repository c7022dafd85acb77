//! Routing rules across the whole table: conflicts, parameter names, catch-all placement,
//! and `Path<..>` types that do not fit their folders.

use std::collections::{BTreeMap, BTreeSet};

use crate::diagnostic::{display_path, Diagnostic, Location};
use crate::model::{Route, RouteTable};
use crate::segment::Segment;
use crate::source::ParamsShape;

/// Checks every rule and returns every violation.
pub(crate) fn validate(table: &RouteTable, prefix: &str) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    for route in &table.routes {
        check_route_shape(route, &mut diagnostics);
        check_path_params(route, &mut diagnostics);
    }
    check_tree(table, prefix, &mut diagnostics);
    diagnostics
}

fn check_route_shape(route: &Route, diagnostics: &mut Vec<Diagnostic>) {
    let segments: Vec<&Segment> = route.url_segments().collect();
    if let Some(position) = segments.iter().position(|s| s.is_catch_all()) {
        if position + 1 < segments.len() {
            diagnostics.push(
                Diagnostic::new(format!(
                    "catch-all must be the last part of the URL: `{}` is followed by `{}`",
                    segments[position],
                    segments[position + 1]
                ))
                .in_file(&route.file)
                .help("move this route next to the catch-all folder, or make the folder a dynamic segment `[name]`"),
            );
        }
    }
    let mut seen = BTreeSet::new();
    for param in route.params() {
        if !seen.insert(param) {
            diagnostics.push(
                Diagnostic::new(format!(
                    "you cannot have the same parameter name `{param}` repeat within a single dynamic path"
                ))
                .in_file(&route.file)
                .help("give each dynamic folder of the path its own name, for example `[org_id]/users/[user_id]`"),
            );
        }
    }
}

fn check_path_params(route: &Route, diagnostics: &mut Vec<Diagnostic>) {
    let params: Vec<&str> = route.params().collect();
    let folder = display_path(route.file.parent().unwrap_or(&route.file));
    for handler in &route.handlers {
        let Some(shape) = &handler.path_params else {
            continue;
        };
        let method = handler.method;
        let listed = quote_list(&params);
        let problem = match shape {
            ParamsShape::Struct { name, fields } => {
                let missing: Vec<&str> = params.iter().copied().filter(|p| !fields.iter().any(|f| f == p)).collect();
                let unknown: Vec<&str> = fields.iter().map(String::as_str).filter(|f| !params.contains(f)).collect();
                if missing.is_empty() && unknown.is_empty() {
                    continue;
                }
                let mut parts = Vec::new();
                if !unknown.is_empty() {
                    parts.push(format!("{} {} not provided by the path", fields_word(&unknown), is_are(&unknown)));
                }
                if !missing.is_empty() {
                    parts.push(format!("{} {} no field", params_word(&missing), has_have(&missing)));
                }
                Some((
                    format!("`Path<{name}>` in `{method}` does not match the folders `{folder}`: {}", parts.join(" and ")),
                    format!("the folders give {listed}; rename the fields of `{name}` (or add `#[serde(rename = \"..\")]`) or the folders to match"),
                ))
            }
            ParamsShape::Tuple(count) if *count != params.len() => Some((
                format!(
                    "`Path` in `{method}` takes a tuple of {count} value{}, but the folders `{folder}` give {} parameter{}",
                    plural(*count),
                    params.len(),
                    plural(params.len())
                ),
                format!("the folders give {listed}, in that order"),
            )),
            ParamsShape::Single(ty) if params.len() != 1 => Some((
                format!(
                    "`Path<{ty}>` in `{method}` takes exactly one parameter, but the folders `{folder}` give {}",
                    params.len()
                ),
                if params.is_empty() {
                    "remove the `Path` argument: this route has no dynamic segment".to_owned()
                } else {
                    format!("take a tuple or a struct with fields for {listed}")
                },
            )),
            _ => None,
        };
        if let Some((message, help)) = problem {
            diagnostics.push(
                Diagnostic::new(message)
                    .at(handler.location.clone())
                    .help(help),
            );
        }
    }
}

/// What occupies one level of the URL tree: the folder kinds found there and the routes
/// that end there.
#[derive(Default)]
struct Level<'a> {
    dynamic: BTreeMap<&'a str, Vec<&'a Route>>,
    catch_all: BTreeMap<&'a str, Vec<&'a Route>>,
    optional: BTreeMap<&'a str, Vec<&'a Route>>,
    ending_here: Vec<&'a Route>,
    url: String,
}

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Shape {
    Static(String),
    Dynamic,
    CatchAll,
    Optional,
}

fn check_tree(table: &RouteTable, prefix: &str, diagnostics: &mut Vec<Diagnostic>) {
    let mut levels: BTreeMap<Vec<Shape>, Level<'_>> = BTreeMap::new();
    for route in &table.routes {
        let segments: Vec<&Segment> = route.url_segments().collect();
        let mut key = Vec::with_capacity(segments.len());
        let mut url = prefix.trim_end_matches('/').to_owned();
        for segment in &segments {
            let level = levels.entry(key.clone()).or_default();
            level.url = if url.is_empty() {
                "/".into()
            } else {
                url.clone()
            };
            let shape = match segment {
                Segment::Static(s) => Shape::Static(s.clone()),
                Segment::Dynamic(p) => {
                    level.dynamic.entry(p).or_default().push(route);
                    Shape::Dynamic
                }
                Segment::CatchAll(p) => {
                    level.catch_all.entry(p).or_default().push(route);
                    Shape::CatchAll
                }
                Segment::OptionalCatchAll(p) => {
                    level.optional.entry(p).or_default().push(route);
                    Shape::Optional
                }
                Segment::Group(_) => continue,
            };
            key.push(shape);
            url.push('/');
            url.push_str(&segment.to_string());
        }
        let level = levels.entry(key).or_default();
        level.url = if url.is_empty() { "/".into() } else { url };
        level.ending_here.push(route);
    }

    for level in levels.values() {
        for names in [&level.dynamic, &level.catch_all, &level.optional] {
            let mut names = names.iter();
            let Some((first, first_routes)) = names.next() else {
                continue;
            };
            for (other, other_routes) in names {
                diagnostics.push(
                    Diagnostic::new(format!(
                        "you cannot use different parameter names for the same dynamic path ('{first}' !== '{other}') under `{}`",
                        level.url
                    ))
                    .at(Location::file(&first_routes[0].file))
                    .at(Location::file(&other_routes[0].file))
                    .help(format!("rename one of the folders so both use the same name, for example both `{first}`")),
                );
            }
        }
        // axum's router (matchit) keeps one wildcard per level: `{id}` beside `{*rest}` would
        // make `router()` panic at start-up, so it is refused here with the files named.
        if let Some((dynamic, dynamic_routes)) = level.dynamic.iter().next() {
            let catch_all = level
                .catch_all
                .iter()
                .map(|(name, routes)| (format!("[...{name}]"), routes))
                .chain(
                    level
                        .optional
                        .iter()
                        .map(|(name, routes)| (format!("[[...{name}]]"), routes)),
                )
                .next();
            if let Some((catch_all, catch_all_routes)) = catch_all {
                diagnostics.push(
                    Diagnostic::new(format!(
                        "you cannot use a dynamic segment and a catch-all at the same level (\"[{dynamic}]\" and \"{catch_all}\") under `{}`: axum's router matches one parameter per level",
                        level.url
                    ))
                    .at(Location::file(&dynamic_routes[0].file))
                    .at(Location::file(&catch_all_routes[0].file))
                    .help(format!(
                        "keep the catch-all and read a single segment from it, or move one of them under a static folder (for example `by-id/[{dynamic}]`)"
                    )),
                );
            }
        }
        if let (Some((required, required_routes)), Some((optional, optional_routes))) =
            (level.catch_all.iter().next(), level.optional.iter().next())
        {
            diagnostics.push(
                Diagnostic::new(format!(
                    "you cannot use both a required and an optional catch-all route at the same level (\"[...{required}]\" and \"[[...{optional}]]\") under `{}`",
                    level.url
                ))
                .at(Location::file(&required_routes[0].file))
                .at(Location::file(&optional_routes[0].file))
                .help("keep one of them: the optional catch-all also matches what the required one does"),
            );
        }
        if let (Some(route), Some((optional, optional_routes))) =
            (level.ending_here.first(), level.optional.iter().next())
        {
            diagnostics.push(
                Diagnostic::new(format!(
                    "you cannot define a route with the same specificity as an optional catch-all route (\"{}\" and \"{}/[[...{optional}]]\")",
                    level.url,
                    level.url.trim_end_matches('/')
                ))
                .at(Location::file(&route.file))
                .at(Location::file(&optional_routes[0].file))
                .help(format!("the optional catch-all already answers `{}`; remove one of the routes, or make the catch-all required `[...{optional}]`", level.url)),
            );
        }
        let mut by_url: BTreeMap<String, Vec<&Route>> = BTreeMap::new();
        for route in &level.ending_here {
            by_url
                .entry(route.display_url(prefix))
                .or_default()
                .push(route);
        }
        for (url, routes) in by_url.into_iter().filter(|(_, routes)| routes.len() > 1) {
            let mut diagnostic = Diagnostic::new(format!(
                "{} route files resolve to the same URL `{url}`",
                count_word(routes.len())
            ));
            for route in &routes {
                diagnostic = diagnostic.at(Location::file(&route.file));
            }
            let groups: BTreeSet<String> = routes
                .iter()
                .flat_map(|r| {
                    r.segments
                        .iter()
                        .filter(|s| matches!(s, Segment::Group(_)))
                        .map(ToString::to_string)
                })
                .collect();
            let help = if groups.is_empty() {
                "keep one route file for each URL".to_owned()
            } else {
                format!(
                    "route groups ({}) do not change the URL; merge the handlers into one file, or move one of them",
                    groups.into_iter().map(|g| format!("`{g}`")).collect::<Vec<_>>().join(", ")
                )
            };
            diagnostics.push(diagnostic.help(help));
        }
    }
}

fn quote_list(names: &[&str]) -> String {
    if names.is_empty() {
        return "no parameters".to_owned();
    }
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn fields_word(names: &[&str]) -> String {
    format!("field{} {}", plural(names.len()), quote_list(names))
}

fn params_word(names: &[&str]) -> String {
    format!("parameter{} {}", plural(names.len()), quote_list(names))
}

fn is_are(names: &[&str]) -> &'static str {
    if names.len() == 1 {
        "is"
    } else {
        "are"
    }
}

fn has_have(names: &[&str]) -> &'static str {
    if names.len() == 1 {
        "has"
    } else {
        "have"
    }
}

fn plural(count: usize) -> &'static str {
    if count == 1 {
        ""
    } else {
        "s"
    }
}

fn count_word(count: usize) -> String {
    match count {
        2 => "two".into(),
        3 => "three".into(),
        n => n.to_string(),
    }
}
