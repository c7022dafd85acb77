//! Finding route and middleware files on disk. The only step that reads the file system.

use std::path::{Path, PathBuf};

use walkdir::WalkDir;

use crate::diagnostic::{display_path, Diagnostic, Error};

/// A file of the routes tree, read into memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SourceFile {
    /// The folder names from the routes root down to the file's folder.
    pub folders: Vec<String>,
    /// Path relative to the crate root, for messages and the route table.
    pub path: PathBuf,
    /// The file's text.
    pub contents: String,
}

/// Everything discovery found below the routes root.
#[derive(Debug, Default)]
pub(crate) struct Discovered {
    /// Every `route.rs`, sorted by path.
    pub routes: Vec<SourceFile>,
    /// Every `middleware.rs`, sorted by path.
    pub middleware: Vec<SourceFile>,
    /// Problems that stop a file from being read as a route (non-UTF-8 names).
    pub diagnostics: Vec<Diagnostic>,
}

/// Walks `root` (absolute), skipping `_private` folders and their subtrees.
///
/// `display_root` is how `root` is shown in messages (relative to the crate root).
pub(crate) fn discover(root: &Path, display_root: &Path) -> Result<Discovered, Error> {
    if !root.is_dir() {
        return Err(Error::config(format!(
            "arbor found no routes folder at `{}`: create it, or point `arbor_build::Builder::routes_dir` at yours",
            display_path(display_root)
        )));
    }
    let mut found = Discovered::default();
    let walker = WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|entry| {
            entry.depth() == 0 || !is_private(entry.file_name().to_string_lossy().as_ref())
        });
    for entry in walker {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(root).to_owned();
            Error::io(path, e.into())
        })?;
        if !entry.file_type().is_file() {
            continue;
        }
        let is_route = entry.file_name() == "route.rs";
        if !is_route && entry.file_name() != "middleware.rs" {
            continue;
        }
        let relative = entry.path().strip_prefix(root).unwrap_or(entry.path());
        let display = display_root.join(relative);
        let mut folders = Vec::new();
        for component in relative.parent().into_iter().flat_map(Path::components) {
            match component.as_os_str().to_str() {
                Some(name) => folders.push(name.to_owned()),
                None => {
                    found.diagnostics.push(
                        Diagnostic::new("folder name is not valid UTF-8")
                            .in_file(&display)
                            .help("rename the folder; URLs are built from folder names"),
                    );
                }
            }
        }
        let contents =
            std::fs::read_to_string(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
        let file = SourceFile {
            folders,
            path: display,
            contents,
        };
        if is_route {
            found.routes.push(file);
        } else {
            found.middleware.push(file);
        }
    }
    Ok(found)
}

/// `_name` folders are private: neither they nor anything below them is routed.
fn is_private(name: &str) -> bool {
    name.starts_with('_')
}
