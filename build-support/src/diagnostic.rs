//! Build errors that name every file involved and say how to fix the problem.

use std::fmt;
use std::path::{Path, PathBuf};

/// A place in the user's tree that a diagnostic points at.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    /// Path relative to the crate root, with `/` separators.
    pub file: String,
    /// 1-based line and column, when the problem is inside the file.
    pub line_col: Option<(usize, usize)>,
}

impl Location {
    pub(crate) fn file(path: &Path) -> Self {
        Self {
            file: display_path(path),
            line_col: None,
        }
    }

    pub(crate) fn at(path: &Path, span: proc_macro2::Span) -> Self {
        let start = span.start();
        Self {
            file: display_path(path),
            line_col: Some((start.line, start.column + 1)),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line_col {
            Some((line, col)) => write!(f, "{}:{line}:{col}", self.file),
            None => f.write_str(&self.file),
        }
    }
}

/// One routing error: what is wrong, where, and how to fix it.
///
/// Rendered like rustc's own errors:
///
/// ```text
/// error: two route files resolve to the same URL `/api/login`
///   --> app/api/(auth)/login/route.rs
///   --> app/api/(public)/login/route.rs
///   = help: route groups (`(auth)`, `(public)`) do not change the URL; merge the handlers into one file, or move one of them
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    message: String,
    locations: Vec<Location>,
    help: Option<String>,
}

impl Diagnostic {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            locations: Vec::new(),
            help: None,
        }
    }

    pub(crate) fn at(mut self, location: Location) -> Self {
        self.locations.push(location);
        self
    }

    pub(crate) fn in_file(self, path: &Path) -> Self {
        self.at(Location::file(path))
    }

    pub(crate) fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// The one-line summary, without locations or help.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Every file (and line, where known) this diagnostic is about.
    pub fn locations(&self) -> &[Location] {
        &self.locations
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.message)?;
        for location in &self.locations {
            write!(f, "\n  --> {location}")?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n  = help: {help}")?;
        }
        Ok(())
    }
}

/// Why route generation failed: every problem found, not only the first.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
}

#[derive(Debug)]
enum ErrorKind {
    Routes(Vec<Diagnostic>),
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    Config(String),
}

impl Error {
    pub(crate) fn routes(mut diagnostics: Vec<Diagnostic>) -> Self {
        diagnostics.sort_by(|a, b| {
            a.locations
                .cmp(&b.locations)
                .then(a.message.cmp(&b.message))
        });
        diagnostics.dedup();
        Self {
            kind: ErrorKind::Routes(diagnostics),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self {
            kind: ErrorKind::Io {
                path: path.into(),
                source,
            },
        }
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Config(message.into()),
        }
    }

    /// The routing problems, if that is what failed (empty for I/O and configuration errors).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match &self.kind {
            ErrorKind::Routes(diagnostics) => diagnostics,
            _ => &[],
        }
    }

    /// Prints the error for cargo to show and ends the build script with exit code 1.
    ///
    /// Build scripts should end this way rather than panic: a panic prints a backtrace hint
    /// that buries the message.
    pub fn exit(&self) -> ! {
        eprintln!("{self}");
        std::process::exit(1)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Routes(diagnostics) => {
                for diagnostic in diagnostics {
                    writeln!(f, "{diagnostic}\n")?;
                }
                let count = diagnostics.len();
                let plural = if count == 1 { "" } else { "s" };
                write!(
                    f,
                    "error: arbor could not generate the router: {count} routing error{plural}"
                )
            }
            ErrorKind::Io { path, source } => {
                write!(
                    f,
                    "error: arbor could not access `{}`: {source}",
                    display_path(path)
                )
            }
            ErrorKind::Config(message) => write!(f, "error: {message}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// `/`-separated display form of a path, the same on every platform.
pub(crate) fn display_path(path: &Path) -> String {
    path.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
        .replace("//", "/")
}
