//! The route model: files turned into URLs, handlers and middleware chains.

use std::path::PathBuf;

use crate::diagnostic::{Diagnostic, Location};
use crate::discover::Discovered;
use crate::segment::Segment;
use crate::source::{self, FolderMiddlewareSource, Handler, Method, SegmentConfig};

/// Every route and folder middleware of the tree, in match-priority order.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    /// The routes, most specific first.
    pub routes: Vec<Route>,
    /// The `middleware.rs` files.
    pub middleware: Vec<FolderMiddleware>,
}

/// One `route.rs`.
#[derive(Debug, Clone)]
pub struct Route {
    /// The file, relative to the crate root.
    pub file: PathBuf,
    /// Its folders, groups included.
    pub segments: Vec<Segment>,
    /// Its exported handlers, in `Allow` order.
    pub handlers: Vec<Handler>,
    /// File-level `arbor::middleware!(..)`, rendered.
    pub file_middleware: Option<Vec<String>>,
    /// Indices into [`RouteTable::middleware`], outermost folder first.
    pub folder_middleware: Vec<usize>,
    /// `MAX_DURATION` / `REVALIDATE` exported by the file.
    pub config: SegmentConfig,
}

/// One `middleware.rs`.
#[derive(Debug, Clone)]
pub struct FolderMiddleware {
    /// The file, relative to the crate root.
    pub file: PathBuf,
    /// The folders it sits in; it applies to every route below them.
    pub segments: Vec<Segment>,
    /// What it provides.
    pub source: FolderMiddlewareSource,
}

impl Route {
    /// The segments that appear in the URL (groups removed).
    pub fn url_segments(&self) -> impl Iterator<Item = &Segment> {
        self.segments
            .iter()
            .filter(|s| !matches!(s, Segment::Group(_)))
    }

    /// The URL in folder notation, as users think of it: `/api/users/[id]`.
    pub fn display_url(&self, prefix: &str) -> String {
        let mut url = prefix.trim_end_matches('/').to_owned();
        for segment in self.url_segments() {
            url.push('/');
            url.push_str(&segment.to_string());
        }
        if url.is_empty() {
            url.push('/');
        }
        url
    }

    /// The axum route patterns: two for an optional catch-all (without and with the rest).
    pub fn axum_patterns(&self, prefix: &str) -> Vec<String> {
        let mut base = prefix.trim_end_matches('/').to_owned();
        let mut optional = None;
        for segment in self.url_segments() {
            match segment {
                Segment::Static(s) => {
                    base.push('/');
                    base.push_str(&encode_static(s));
                }
                Segment::Dynamic(p) => base.push_str(&format!("/{{{p}}}")),
                Segment::CatchAll(p) => base.push_str(&format!("/{{*{p}}}")),
                Segment::OptionalCatchAll(p) => optional = Some(p.clone()),
                Segment::Group(_) => {}
            }
        }
        let bare = if base.is_empty() {
            "/".to_owned()
        } else {
            base.clone()
        };
        match optional {
            Some(p) => vec![bare, format!("{base}/{{*{p}}}")],
            None => vec![bare],
        }
    }

    /// The URL params in path order.
    pub fn params(&self) -> impl Iterator<Item = &str> {
        self.url_segments().filter_map(Segment::param)
    }

    /// The methods the route answers, for the `Allow` header: exported ones, HEAD when GET
    /// is exported, and OPTIONS.
    pub fn allow(&self) -> Vec<Method> {
        let mut allow: Vec<Method> = self.handlers.iter().map(|h| h.method).collect();
        if allow.contains(&Method::Get) {
            allow.push(Method::Head);
        }
        allow.push(Method::Options);
        allow.sort();
        allow.dedup();
        allow
    }

    /// Whether `method` is exported by the file (as opposed to answered automatically).
    pub fn exports(&self, method: Method) -> bool {
        self.handlers.iter().any(|h| h.method == method)
    }

    fn priority_key(&self) -> Vec<(u8, String)> {
        self.url_segments()
            .map(|s| (s.rank(), s.to_string()))
            .collect()
    }
}

/// Builds the table from discovered files: parses folders and sources, links middleware.
///
/// Every problem is collected; none stops the others from being found.
pub(crate) fn build(discovered: &Discovered) -> (RouteTable, Vec<Diagnostic>) {
    let mut diagnostics = discovered.diagnostics.clone();
    let mut table = RouteTable::default();

    for file in &discovered.middleware {
        let Some(segments) = parse_folders(&file.folders, &file.path, &mut diagnostics) else {
            continue;
        };
        match source::parse_middleware(&file.path, &file.contents) {
            Ok(source) => table.middleware.push(FolderMiddleware {
                file: file.path.clone(),
                segments,
                source,
            }),
            Err(errors) => diagnostics.extend(errors),
        }
    }

    for file in &discovered.routes {
        let segments = parse_folders(&file.folders, &file.path, &mut diagnostics);
        let source = match source::parse_route(&file.path, &file.contents) {
            Ok(source) => Some(source),
            Err(errors) => {
                diagnostics.extend(errors);
                None
            }
        };
        let (Some(segments), Some(source)) = (segments, source) else {
            continue;
        };
        let mut folder_middleware: Vec<usize> = table
            .middleware
            .iter()
            .enumerate()
            .filter(|(_, m)| segments.starts_with(&m.segments))
            .map(|(index, _)| index)
            .collect();
        folder_middleware.sort_by_key(|&index| table.middleware[index].segments.len());
        table.routes.push(Route {
            file: file.path.clone(),
            segments,
            handlers: source.handlers,
            file_middleware: source.file_middleware,
            folder_middleware,
            config: source.config,
        });
    }

    table.routes.sort_by(|a, b| {
        a.priority_key()
            .cmp(&b.priority_key())
            .then(a.file.cmp(&b.file))
    });
    (table, diagnostics)
}

fn parse_folders(
    folders: &[String],
    file: &std::path::Path,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Vec<Segment>> {
    let mut segments = Vec::with_capacity(folders.len());
    let mut ok = true;
    for folder in folders {
        match Segment::parse(folder) {
            Ok(segment) => segments.push(segment),
            Err(error) => {
                ok = false;
                diagnostics.push(
                    Diagnostic::new(format!("the folder `{}` {}", error.segment, error.problem))
                        .at(Location::file(file))
                        .help(error.help),
                );
            }
        }
    }
    ok.then_some(segments)
}

/// Percent-encodes a static segment the way clients send it, so that it matches the raw path.
fn encode_static(segment: &str) -> String {
    let mut encoded = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}
