//! `cargo arbor new`: a project that builds, serves and passes its test on the first try.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `cargo arbor new`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The project's folder and package name.
    name: String,
    /// The Arbor checkout to depend on, until Arbor is published. Default: the checkout this
    /// `cargo-arbor` was built from.
    #[arg(long, value_name = "PATH")]
    arbor_path: Option<PathBuf>,
    /// A fuller project: a SQLite database with migrations, accounts with server-side sessions
    /// (sign-up, login, logout), a notes API, a readiness check on the database, and tests.
    #[arg(long)]
    full: bool,
}

/// Where this binary was built from: its crate is `<checkout>/cli`.
const CHECKOUT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

pub(crate) fn run(args: &Args) -> Result<ExitCode, String> {
    let checkout = args
        .arbor_path
        .clone()
        .unwrap_or_else(|| PathBuf::from(CHECKOUT));
    let checkout = checkout
        .canonicalize()
        .map_err(|e| format!("the Arbor checkout {}: {e}", checkout.display()))?;
    if !checkout.join("framework/Cargo.toml").is_file() {
        return Err(format!(
            "{} is not an Arbor checkout (no framework/Cargo.toml); pass --arbor-path",
            checkout.display()
        ));
    }
    let dir = PathBuf::from(&args.name);
    let name = package_name(&args.name)?;
    if dir.exists() {
        return Err(format!("{} already exists", dir.display()));
    }
    let templates = if args.full { FULL_FILES } else { FILES };
    let files = files(templates, &name, &checkout);
    for (path, contents) in files {
        write(&dir.join(path), &contents)?;
    }
    // Arbor's own lock file: the new project builds with the versions Arbor was tested with,
    // from the local registry cache, with no network needed.
    let lock = checkout.join("Cargo.lock");
    if lock.is_file() {
        std::fs::copy(&lock, dir.join("Cargo.lock"))
            .map_err(|e| format!("copying {}: {e}", lock.display()))?;
    }
    println!("created {} (package `{name}`)", dir.display());
    let first_url = if args.full { "reference" } else { "hello" };
    println!(
        "  cd {} && cargo arbor dev   # serves http://127.0.0.1:3000/api/{first_url}",
        args.name
    );
    println!("  cargo test                  # the app in-process");
    println!("  cargo arbor route 'users/[id]' --methods GET,PATCH");
    Ok(ExitCode::SUCCESS)
}

/// The package name for a folder name: its last component, which Cargo must accept.
fn package_name(folder: &str) -> Result<String, String> {
    let name = Path::new(folder)
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("`{folder}` has no usable folder name"))?;
    let valid = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name.starts_with(|c: char| c.is_ascii_alphabetic());
    if !valid {
        return Err(format!(
            "`{name}` is not a package name: use letters, digits, `-` and `_`, starting with a letter"
        ));
    }
    Ok(name.to_owned())
}

/// A template with the project's names and the checkout's paths filled in.
fn filler<'a>(name: &'a str, checkout: &'a Path) -> impl Fn(&str) -> String + 'a {
    let crate_name = name.replace('-', "_");
    // A TOML basic string: only `\` and `"` need escaping in a path.
    let toml_path = |path: PathBuf| {
        let path = path.display().to_string();
        format!("\"{}\"", path.replace('\\', "\\\\").replace('"', "\\\""))
    };
    let arbor = toml_path(checkout.join("framework"));
    let arbor_build = toml_path(checkout.join("build-support"));
    move |template: &str| {
        template
            .replace("{name}", name)
            .replace("{crate_name}", &crate_name)
            .replace("{arbor}", &arbor)
            .replace("{arbor_build}", &arbor_build)
    }
}

/// Every file of the new project, by path, and its template.
const FILES: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("../templates/new/Cargo.toml.in")),
    ("build.rs", include_str!("../templates/new/build.rs")),
    ("src/lib.rs", include_str!("../templates/new/lib.rs.in")),
    ("src/main.rs", include_str!("../templates/new/main.rs.in")),
    (
        "app/api/hello/route.rs",
        include_str!("../templates/new/route.rs"),
    ),
    (
        "tests/hello.rs",
        include_str!("../templates/new/test.rs.in"),
    ),
    (".gitignore", "/target\n"),
];

/// Every file of a `--full` project, by path, and its template.
const FULL_FILES: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../templates/full/Cargo.toml.in"),
    ),
    ("build.rs", include_str!("../templates/full/build.rs")),
    ("src/lib.rs", include_str!("../templates/full/lib.rs.in")),
    (
        "src/accounts.rs",
        include_str!("../templates/full/accounts.rs"),
    ),
    ("src/main.rs", include_str!("../templates/full/main.rs.in")),
    (
        "migrations/0001_init.sql",
        include_str!("../templates/full/migrations/0001_init.sql"),
    ),
    (
        "app/api/signup/route.rs",
        include_str!("../templates/full/api/signup.rs"),
    ),
    (
        "app/api/login/route.rs",
        include_str!("../templates/full/api/login.rs"),
    ),
    (
        "app/api/logout/route.rs",
        include_str!("../templates/full/api/logout.rs"),
    ),
    (
        "app/api/notes/route.rs",
        include_str!("../templates/full/api/notes.rs"),
    ),
    (
        "app/api/notes/[id]/route.rs",
        include_str!("../templates/full/api/note.rs"),
    ),
    (
        "tests/notes.rs",
        include_str!("../templates/full/test.rs.in"),
    ),
    (".gitignore", "/target\n/*.db\n/*.db-*\n"),
];

/// The files of `templates`, with the project's names and the checkout's paths filled in.
fn files(
    templates: &[(&'static str, &str)],
    name: &str,
    checkout: &Path,
) -> Vec<(&'static str, String)> {
    let fill = filler(name, checkout);
    templates
        .iter()
        .map(|(path, template)| (*path, fill(template)))
        .collect()
}

pub(crate) fn write(path: &Path, contents: &str) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("creating {}: {e}", parent.display()))?;
    }
    std::fs::write(path, contents).map_err(|e| format!("writing {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names_follow_cargo() {
        assert_eq!(package_name("my-api").unwrap(), "my-api");
        assert_eq!(package_name("some/where/shop_2").unwrap(), "shop_2");
        for bad in ["2fast", "my api", "é", ""] {
            assert!(package_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn templates_are_filled() {
        let files = files(FILES, "my-api", Path::new("/opt/arbor"));
        let get = |path: &str| &files.iter().find(|(p, _)| *p == path).unwrap().1;
        assert!(get("Cargo.toml").contains("name = \"my-api\""));
        assert!(get("Cargo.toml").contains("arbor = { path = \"/opt/arbor/framework\" }"));
        let quoted = super::files(FILES, "my-api", Path::new("/opt/my \"arbor\""));
        let manifest: toml::Table = quoted[0].1.parse().unwrap();
        assert_eq!(
            manifest["dependencies"]["arbor"]["path"].as_str(),
            Some("/opt/my \"arbor\"/framework")
        );
        assert!(get("src/main.rs").contains("my_api::app()"));
        assert!(get("tests/hello.rs").contains("my_api::app()"));
        for (path, contents) in &files {
            assert!(
                !contents.contains("{name}") && !contents.contains("{crate_name}"),
                "{path}"
            );
        }
    }
}
