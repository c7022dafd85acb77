//! Build-time route discovery and router generation for [Arbor](https://docs.rs/arbor).
//!
//! Call it from `build.rs`; the common case is one line:
//!
//! ```no_run
//! // build.rs
//! fn main() {
//!     arbor_build::compile();
//! }
//! ```
//!
//! and pull the generated module into the crate with `arbor::routes!();`.
//!
//! Options go through [`Builder`], in the style of `prost-build`:
//!
//! ```no_run
//! fn main() {
//!     arbor_build::Builder::new()
//!         .routes_dir("app/api")
//!         .url_prefix("/api")
//!         .state("crate::AppState")
//!         .compile()
//!         .unwrap_or_else(|error| error.exit());
//! }
//! ```
//!
//! The pipeline is discover → model → validate → generate → emit; see `ARCHITECTURE.md`.

#![warn(missing_docs)]
// The examples above are `build.rs` files: their `fn main` is the point.
#![allow(clippy::needless_doctest_main)]

/// The middleware-list parser, now in `arbor-syntax`; re-exported for existing users.
#[doc(hidden)]
pub use arbor_syntax::attr;
mod config;
mod diagnostic;
mod discover;
mod generate;
mod model;
mod openapi;
mod operations;
mod segment;
mod source;
mod validate;

use std::path::{Path, PathBuf};

pub use arbor_syntax::Method;
pub use diagnostic::{Diagnostic, Error, Location};
pub use model::{FolderMiddleware, Route, RouteTable};
pub use segment::{Segment, SegmentError};
pub use source::{FolderMiddlewareSource, Handler, HandlerDoc, ParamsShape, SegmentConfig};

/// The file the generated module is written to, inside `OUT_DIR`; `arbor::routes!()` includes it.
pub const OUTPUT_FILE: &str = "arbor_routes.rs";

/// Generates the router with the default options, or ends the build with the routing errors.
///
/// Equivalent to `Builder::new().compile()`, printing the error and exiting with status 1 on
/// failure (cargo shows the message; there is no panic backtrace to wade through).
pub fn compile() {
    if let Err(error) = Builder::new().compile() {
        error.exit();
    }
}

/// Configures route generation. Every setter has a default; see each method.
#[derive(Debug, Clone)]
pub struct Builder {
    routes_dir: PathBuf,
    url_prefix: String,
    state: String,
    manifest_dir: Option<PathBuf>,
    out_dir: Option<PathBuf>,
    emit_rerun_if_changed: bool,
    openapi: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    /// Routes in `app/api`, served under `/api`, with state `()`.
    pub fn new() -> Self {
        Self {
            routes_dir: PathBuf::from("app/api"),
            url_prefix: "/api".to_owned(),
            state: "()".to_owned(),
            manifest_dir: None,
            out_dir: None,
            emit_rerun_if_changed: true,
            openapi: true,
        }
    }

    /// The folder scanned for `route.rs` files, relative to the crate root. Default `app/api`.
    pub fn routes_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.routes_dir = dir.into();
        self
    }

    /// The URL every route starts with. Default `/api`, matching the default folder; use `""`
    /// to serve the folder at the root.
    pub fn url_prefix(&mut self, prefix: impl Into<String>) -> &mut Self {
        self.url_prefix = prefix.into();
        self
    }

    /// The router's state type, as a Rust type path such as `crate::AppState`. Default `()`.
    pub fn state(&mut self, type_path: impl Into<String>) -> &mut Self {
        self.state = type_path.into();
        self
    }

    /// The crate root. Default: `CARGO_MANIFEST_DIR`.
    pub fn manifest_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.manifest_dir = Some(dir.into());
        self
    }

    /// Where the generated file goes. Default: `OUT_DIR`.
    pub fn out_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.out_dir = Some(dir.into());
        self
    }

    /// Whether to print `cargo:rerun-if-changed` for the routes folder. Default `true`; turn
    /// off when calling the builder outside a build script.
    pub fn emit_rerun_if_changed(&mut self, emit: bool) -> &mut Self {
        self.emit_rerun_if_changed = emit;
        self
    }

    /// Whether to generate the API contract, `routes::openapi()`. Default `true`; an app that
    /// serves no contract saves the compile time of describing every handler.
    pub fn openapi(&mut self, generate: bool) -> &mut Self {
        self.openapi = generate;
        self
    }

    /// Scans, validates and generates, then writes `OUT_DIR/arbor_routes.rs` if its content
    /// changed.
    ///
    /// Cargo re-runs the build script only when something under the routes folder changed
    /// (and then recompiles the crate, as it always does after a build script runs); a build
    /// with no change re-runs nothing. An unchanged output keeps its timestamp.
    pub fn compile(&self) -> Result<(), Error> {
        let manifest_dir = self.resolve_manifest_dir()?;
        if self.emit_rerun_if_changed {
            // A directory makes cargo watch every file and folder below it, so adding,
            // removing or renaming a route re-runs codegen; nothing else does.
            println!(
                "cargo:rerun-if-changed={}",
                manifest_dir.join(&self.routes_dir).display()
            );
        }
        let code = self.generate_in(&manifest_dir)?;
        let out_dir = match &self.out_dir {
            Some(dir) => dir.clone(),
            None => std::env::var_os("OUT_DIR").map(PathBuf::from).ok_or_else(|| {
                Error::config("OUT_DIR is not set: call arbor_build from build.rs, or set Builder::out_dir")
            })?,
        };
        write_if_changed(&out_dir.join(OUTPUT_FILE), &code)
    }

    /// Scans, validates and returns the generated source without writing it.
    pub fn generate(&self) -> Result<String, Error> {
        let manifest_dir = self.resolve_manifest_dir()?;
        self.generate_in(&manifest_dir)
    }

    /// Scans and validates, returning the route table (for tools and tests).
    pub fn route_table(&self) -> Result<RouteTable, Error> {
        let manifest_dir = self.resolve_manifest_dir()?;
        self.table_in(&manifest_dir)
    }

    fn resolve_manifest_dir(&self) -> Result<PathBuf, Error> {
        match &self.manifest_dir {
            Some(dir) => Ok(dir.clone()),
            None => std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).ok_or_else(|| {
                Error::config("CARGO_MANIFEST_DIR is not set: call arbor_build from build.rs, or set Builder::manifest_dir")
            }),
        }
    }

    fn table_in(&self, manifest_dir: &Path) -> Result<RouteTable, Error> {
        if !(self.url_prefix.is_empty() || self.url_prefix.starts_with('/')) {
            return Err(Error::config(format!(
                "Builder::url_prefix(\"{}\") must start with `/` (or be \"\" to serve the routes at the root)",
                self.url_prefix
            )));
        }
        let discovered =
            discover::discover(&manifest_dir.join(&self.routes_dir), &self.routes_dir)?;
        let (table, mut diagnostics) = model::build(&discovered);
        diagnostics.extend(validate::validate(&table, &self.url_prefix));
        if diagnostics.is_empty() {
            Ok(table)
        } else {
            Err(Error::routes(diagnostics))
        }
    }

    fn generate_in(&self, manifest_dir: &Path) -> Result<String, Error> {
        let table = self.table_in(manifest_dir)?;
        let state = syn::parse_str::<syn::Type>(&self.state).map_err(|e| {
            Error::config(format!(
                "Builder::state(\"{}\") is not a Rust type: {e}",
                self.state
            ))
        })?;
        let tokens = generate::generate(
            &table,
            &generate::Options {
                manifest_dir,
                url_prefix: &self.url_prefix,
                state,
                openapi: self.openapi,
            },
        );
        let file = syn::parse2::<syn::File>(tokens).map_err(|e| {
            Error::config(format!(
                "arbor-build generated invalid code (a bug, please report it): {e}"
            ))
        })?;
        Ok(format!(
            "// This file is @generated by arbor-build from `{}`.\n// Do not edit it: add, move or change route files instead.\n\n{}",
            diagnostic::display_path(&self.routes_dir),
            prettyplease::unparse(&file)
        ))
    }
}

fn write_if_changed(path: &Path, contents: &str) -> Result<(), Error> {
    if std::fs::read_to_string(path).is_ok_and(|existing| existing == contents) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    std::fs::write(path, contents).map_err(|e| Error::io(path, e))
}
