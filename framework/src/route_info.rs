//! The static route table generated next to the router, for tooling.

use std::fmt;

/// One exported handler, as listed in the generated `routes::ROUTES`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteInfo {
    /// `GET`, `POST`, ...
    pub method: &'static str,
    /// The URL in folder notation: `/api/users/[id]`.
    pub path: &'static str,
    /// The route file, relative to the crate root.
    pub file: &'static str,
    /// The middleware around the handler, outermost first: folder, file, then fn level.
    pub middleware: &'static [&'static str],
}

impl RouteInfo {
    /// Formats a table of routes, one per line, aligned for a terminal.
    pub fn table(routes: &[RouteInfo]) -> String {
        let method_width = routes
            .iter()
            .map(|r| r.method.len())
            .max()
            .unwrap_or(0)
            .max(6);
        let path_width = routes
            .iter()
            .map(|r| r.path.len())
            .max()
            .unwrap_or(0)
            .max(3);
        let file_width = routes
            .iter()
            .map(|r| r.file.len())
            .max()
            .unwrap_or(0)
            .max(4);
        let mut out = format!(
            "{:method_width$}  {:path_width$}  {:file_width$}  MIDDLEWARE\n",
            "METHOD", "URL", "FILE"
        );
        for route in routes {
            out.push_str(&format!(
                "{route:method_width$}  {:path_width$}  {:file_width$}",
                route.path, route.file
            ));
            if route.middleware.is_empty() {
                out.push_str("  -");
            } else {
                out.push_str("  ");
                out.push_str(&route.middleware.join(" > "));
            }
            out.push('\n');
        }
        out
    }
}

impl fmt::Display for RouteInfo {
    /// The method, padded to the requested width.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.method)
    }
}
