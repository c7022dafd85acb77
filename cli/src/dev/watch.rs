//! Watching the crate's sources: every folder but `target`, hidden ones and `node_modules`,
//! and the files at the root (`Cargo.toml`, `build.rs`).

use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};

use super::Event;

/// Starts watching; changes arrive as [`Event::Changed`] until the watcher is dropped.
pub(crate) fn start(root: &Path, events: Sender<Event>) -> Result<RecommendedWatcher, String> {
    let base = root.to_path_buf();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if !matches!(
            event.kind,
            EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
        ) || matches!(
            event.kind,
            EventKind::Modify(notify::event::ModifyKind::Metadata(_))
        ) {
            return;
        }
        let paths: Vec<PathBuf> = event
            .paths
            .iter()
            .filter(|path| is_source(path))
            .map(|path| path.strip_prefix(&base).unwrap_or(path).to_path_buf())
            .collect();
        if !paths.is_empty() {
            let _ = events.send(Event::Changed(paths));
        }
    })
    .map_err(|e| format!("cannot watch files: {e}"))?;

    let watch = |watcher: &mut RecommendedWatcher, path: &Path, mode| {
        watcher
            .watch(path, mode)
            .map_err(|e| format!("cannot watch {}: {e}", path.display()))
    };
    watch(&mut watcher, root, RecursiveMode::NonRecursive)?;
    let entries = std::fs::read_dir(root).map_err(|e| format!("{}: {e}", root.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let skipped = name == "target" || name == "node_modules" || name.starts_with('.');
        if path.is_dir() && !skipped {
            watch(&mut watcher, &path, RecursiveMode::Recursive)?;
        }
    }
    Ok(watcher)
}

/// Whether a change to this file can change the build: not an editor's swap or backup file,
/// not the build's own output.
fn is_source(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
        return false;
    };
    let editor_file = name.starts_with(".#")
        || name.ends_with('~')
        || name.ends_with(".swp")
        || name.ends_with(".swx")
        || name == "4913";
    let in_output = path
        .components()
        .any(|part| matches!(part.as_os_str().to_str(), Some("target" | ".git")));
    !editor_file && !in_output
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn editor_files_and_build_output_are_not_sources() {
        assert!(is_source(Path::new("/p/app/api/hello/route.rs")));
        assert!(is_source(Path::new("/p/Cargo.toml")));
        assert!(!is_source(Path::new("/p/app/api/hello/.route.rs.swp")));
        assert!(!is_source(Path::new("/p/app/api/hello/route.rs~")));
        assert!(!is_source(Path::new("/p/src/4913")));
        assert!(!is_source(Path::new(
            "/p/target/debug/build/x/out/routes.rs"
        )));
    }
}
