//! Golden tests: each folder of `tests/fixtures/` is a crate root with an `app/api` tree.
//!
//! For a tree that must generate, the output is compared with `expected.rs` in the case
//! folder; for a tree that must fail, the rendered error is compared with `expected.stderr`.
//! The absolute fixture path in generated `#[path = ".."]` attributes is written `$FIXTURE`.
//!
//! Run with `ARBOR_BLESS=1` to rewrite the expected files from the current output, then
//! review the diff. Fixture `.rs` files are only parsed, never compiled.
//!
//! The excerpt of a generated file in `docs/routing.md` is cut from `mixed/expected.rs`; after
//! re-blessing `mixed`, copy the changed parts into the doc (the last test says which).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use arbor_build::Builder;

const PLACEHOLDER: &str = "$FIXTURE";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expect {
    /// Generates; compared with `expected.rs`.
    Code,
    /// Fails; the rendered error is compared with `expected.stderr`.
    Error,
}

struct Case {
    name: &'static str,
    expect: Expect,
    configure: fn(&mut Builder),
}

fn defaults(_: &mut Builder) {}

const CASES: &[Case] = &[
    // Every segment kind, root route, `_private` and `%5F` folders, fn and list folder
    // middleware, a file-level `arbor::middleware!`, `#[arbor::handler(..)]`, a `pub use`
    // export and an explicit `OPTIONS`.
    Case {
        name: "mixed",
        expect: Expect::Code,
        configure: defaults,
    },
    Case {
        name: "minimal",
        expect: Expect::Code,
        configure: defaults,
    },
    // A custom state type and routes served at `/`, with an optional catch-all at the root.
    Case {
        name: "state_at_root",
        expect: Expect::Code,
        configure: |builder| {
            builder.state("crate::AppState").url_prefix("");
        },
    },
    // Three levels of folder middleware plus file and handler middleware, and module names
    // that collide (`users/id` and `users/[id]`, `a-b` and `a_b`).
    Case {
        name: "nested_middleware",
        expect: Expect::Code,
        configure: defaults,
    },
    Case {
        name: "group_conflict",
        expect: Expect::Error,
        configure: defaults,
    },
    Case {
        name: "slug_mismatch",
        expect: Expect::Error,
        configure: defaults,
    },
    Case {
        name: "catch_all_rules",
        expect: Expect::Error,
        configure: defaults,
    },
    Case {
        name: "many_errors",
        expect: Expect::Error,
        configure: defaults,
    },
    // Segment config Arbor would ignore: other spellings, near misses and Next.js configs it
    // does not support, in several files, all reported at once; the file's own constants and
    // the known config pass.
    Case {
        name: "segment_config",
        expect: Expect::Error,
        configure: defaults,
    },
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn blessing() -> bool {
    std::env::var_os("ARBOR_BLESS").is_some_and(|v| !v.is_empty() && v != "0")
}

fn builder_for(case: &Case) -> Builder {
    let mut builder = Builder::new();
    builder
        .manifest_dir(fixtures().join(case.name))
        .emit_rerun_if_changed(false);
    (case.configure)(&mut builder);
    builder
}

/// What the case produces, with the machine-specific fixture path replaced.
fn actual(case: &Case) -> Result<String, String> {
    let dir = fixtures().join(case.name);
    let normalize = |text: String| {
        let absolute = dir.to_string_lossy();
        // Windows paths appear escaped inside string literals.
        let escaped = absolute.replace('\\', "\\\\");
        text.replace(&escaped, PLACEHOLDER)
            .replace(absolute.as_ref(), PLACEHOLDER)
    };
    builder_for(case)
        .generate()
        .map(normalize)
        .map_err(|error| normalize(format!("{error}\n")))
}

fn run(name: &str) {
    let case = CASES
        .iter()
        .find(|case| case.name == name)
        .unwrap_or_else(|| panic!("no case `{name}` in CASES"));
    let dir = fixtures().join(case.name);
    assert!(
        dir.join("app/api").is_dir(),
        "fixture `{name}` has no app/api folder"
    );
    let (produced, file, other) = match (case.expect, actual(case)) {
        (Expect::Code, Ok(code)) => (code, "expected.rs", "expected.stderr"),
        (Expect::Error, Err(error)) => (error, "expected.stderr", "expected.rs"),
        (Expect::Code, Err(error)) => panic!("fixture `{name}` should generate, but:\n{error}"),
        (Expect::Error, Ok(code)) => {
            panic!("fixture `{name}` should fail, but generated:\n{code}")
        }
    };
    assert!(
        !produced.contains(env!("CARGO_MANIFEST_DIR")),
        "fixture `{name}`: an absolute path escaped normalization:\n{produced}"
    );
    let expected_path = dir.join(file);
    if blessing() {
        std::fs::write(&expected_path, &produced).unwrap();
        let stale = dir.join(other);
        if stale.exists() {
            std::fs::remove_file(stale).unwrap();
        }
        return;
    }
    assert!(
        !dir.join(other).exists(),
        "fixture `{name}`: stale `{other}` (expected `{file}`)"
    );
    let expected = std::fs::read_to_string(&expected_path)
        .unwrap_or_else(|e| {
            panic!(
                "fixture `{name}`: cannot read {}: {e}\nrun with ARBOR_BLESS=1 to create it",
                expected_path.display()
            )
        })
        .replace("\r\n", "\n");
    if expected != produced {
        panic!(
            "fixture `{name}` differs from {}{}\n--- actual ---\n{produced}\n\
             run `ARBOR_BLESS=1 cargo test -p arbor-build --test golden` to accept it",
            expected_path.display(),
            first_difference(&expected, &produced),
        );
    }
}

fn first_difference(expected: &str, actual: &str) -> String {
    let mut expected_lines = expected.lines();
    let mut actual_lines = actual.lines();
    let mut line = 1;
    loop {
        match (expected_lines.next(), actual_lines.next()) {
            (None, None) => return " (trailing whitespace)".to_owned(),
            (e, a) if e != a => {
                return format!(
                    " at line {line}:\n  expected: {}\n  actual:   {}",
                    e.unwrap_or("<end of file>"),
                    a.unwrap_or("<end of file>")
                )
            }
            _ => line += 1,
        }
    }
}

macro_rules! golden {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run(stringify!($name));
            }
        )*

        #[test]
        fn every_fixture_folder_is_a_case() {
            let on_disk: BTreeSet<String> = std::fs::read_dir(fixtures())
                .unwrap()
                .map(|entry| entry.unwrap())
                .filter(|entry| entry.file_type().unwrap().is_dir())
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect();
            let declared: BTreeSet<String> =
                CASES.iter().map(|case| case.name.to_owned()).collect();
            let tested: BTreeSet<String> =
                [$(stringify!($name)),*].iter().map(|name| (*name).to_owned()).collect();
            assert_eq!(on_disk, declared, "fixture folders and CASES differ");
            assert_eq!(tested, declared, "CASES and golden! tests differ");
        }
    };
}

golden!(
    mixed,
    minimal,
    state_at_root,
    nested_middleware,
    group_conflict,
    slug_mismatch,
    catch_all_rules,
    many_errors,
    segment_config,
);

/// The relative paths in messages and comments are the same on every machine; only the
/// `#[path]` attributes carry the fixture folder, and they name files that exist.
#[test]
fn generated_paths_point_at_the_route_files() {
    for case in CASES.iter().filter(|case| case.expect == Expect::Code) {
        let dir = fixtures().join(case.name);
        let code = builder_for(case).generate().unwrap();
        let paths: Vec<&str> = code
            .lines()
            .filter_map(|line| line.trim().strip_prefix("#[path = \""))
            .map(|rest| rest.trim_end_matches("\"]"))
            .collect();
        assert!(!paths.is_empty(), "case `{}`", case.name);
        for path in paths {
            let file = Path::new(path);
            assert!(
                file.is_absolute() && file.starts_with(&dir) && file.is_file(),
                "case `{}`: `{path}`",
                case.name
            );
            assert!(
                !path.contains("/_private/") && !path.contains("/_lib/"),
                "case `{}`: private file included: {path}",
                case.name
            );
        }
    }
}

/// Generating twice from the same tree gives byte-identical output.
#[test]
fn generation_is_deterministic() {
    for case in CASES.iter().filter(|case| case.expect == Expect::Code) {
        let first = builder_for(case).generate().unwrap();
        let second = builder_for(case).generate().unwrap();
        assert_eq!(first, second, "case `{}`", case.name);
    }
    for case in CASES.iter().filter(|case| case.expect == Expect::Error) {
        let first = builder_for(case).generate().unwrap_err().to_string();
        let second = builder_for(case).generate().unwrap_err().to_string();
        assert_eq!(first, second, "case `{}`", case.name);
    }
}

/// The same tree written in a different order, into a different folder, generates the same
/// code apart from the folder name.
#[test]
fn generation_does_not_depend_on_creation_order() {
    let files = [
        ("users/[id]/route.rs", "pub async fn GET() {}\n"),
        (
            "users/route.rs",
            "pub async fn POST() {}\npub async fn GET() {}\n",
        ),
        ("(auth)/middleware.rs", "arbor::middleware!(auth);\n"),
        ("(auth)/me/route.rs", "pub async fn GET() {}\n"),
        ("docs/[[...slug]]/route.rs", "pub async fn GET() {}\n"),
        ("route.rs", "pub async fn GET() {}\n"),
    ];
    let generate = |order: &mut dyn Iterator<Item = &(&str, &str)>| {
        let root = tempfile::tempdir().unwrap();
        for (path, contents) in order {
            let file = root.path().join("app/api").join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, contents).unwrap();
        }
        let code = Builder::new()
            .manifest_dir(root.path())
            .emit_rerun_if_changed(false)
            .generate()
            .unwrap();
        code.replace(root.path().to_string_lossy().as_ref(), PLACEHOLDER)
    };
    let forward = generate(&mut files.iter());
    let backward = generate(&mut files.iter().rev());
    assert_eq!(forward, backward);
    assert!(forward.contains("#[path = \"$FIXTURE/app/api/users/[id]/route.rs\"]"));
}

/// `compile()` writes `OUT_DIR/arbor_routes.rs`, leaves it untouched (same mtime) when the
/// content would not change, and rewrites it when a route is added.
#[test]
fn compile_writes_only_when_the_output_changes() {
    let root = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let out_dir = out.path().join("nested/out");
    let route = root.path().join("app/api/hello/route.rs");
    std::fs::create_dir_all(route.parent().unwrap()).unwrap();
    std::fs::write(&route, "pub async fn GET() {}\n").unwrap();
    let compile = || {
        Builder::new()
            .manifest_dir(root.path())
            .out_dir(&out_dir)
            .emit_rerun_if_changed(false)
            .compile()
    };

    compile().unwrap();
    let output = out_dir.join(arbor_build::OUTPUT_FILE);
    assert_eq!(output.file_name().unwrap(), "arbor_routes.rs");
    let written = std::fs::read_to_string(&output).unwrap();
    let generated = Builder::new()
        .manifest_dir(root.path())
        .emit_rerun_if_changed(false)
        .generate()
        .unwrap();
    assert_eq!(written, generated);

    // Backdate the file so that any rewrite, however fast, shows in its mtime.
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    let set_mtime = |time| {
        std::fs::File::options()
            .write(true)
            .open(&output)
            .unwrap()
            .set_modified(time)
            .unwrap();
    };
    let mtime = || std::fs::metadata(&output).unwrap().modified().unwrap();
    set_mtime(old);
    assert_eq!(mtime(), old);

    compile().unwrap();
    assert_eq!(mtime(), old, "an unchanged tree rewrote the output");
    assert_eq!(std::fs::read_to_string(&output).unwrap(), written);

    // Touching a route file without changing what it exports changes nothing either.
    std::fs::write(&route, "// a comment\npub async fn GET() {}\n").unwrap();
    compile().unwrap();
    assert_eq!(mtime(), old, "a comment-only change rewrote the output");

    let added = root.path().join("app/api/users/[id]/route.rs");
    std::fs::create_dir_all(added.parent().unwrap()).unwrap();
    std::fs::write(&added, "pub async fn DELETE() {}\n").unwrap();
    compile().unwrap();
    assert_ne!(mtime(), old, "adding a route did not rewrite the output");
    let rewritten = std::fs::read_to_string(&output).unwrap();
    assert_ne!(rewritten, written);
    assert!(rewritten.contains(".route(\"/api/users/{id}\", methods)"));
    assert!(rewritten.contains("route_users_id::DELETE"));

    // A failing tree leaves the last good output in place.
    set_mtime(old);
    std::fs::write(&added, "pub async fn delete() {}\n").unwrap();
    assert!(compile().is_err());
    assert_eq!(mtime(), old);
    assert_eq!(std::fs::read_to_string(&output).unwrap(), rewritten);
}

#[test]
fn compile_without_out_dir_outside_a_build_script_is_a_config_error() {
    if std::env::var_os("OUT_DIR").is_some() {
        return; // only meaningful when cargo did not set it for this test binary
    }
    let root = tempfile::tempdir().unwrap();
    let route = root.path().join("app/api/route.rs");
    std::fs::create_dir_all(route.parent().unwrap()).unwrap();
    std::fs::write(&route, "pub async fn GET() {}\n").unwrap();
    let error = Builder::new()
        .manifest_dir(root.path())
        .emit_rerun_if_changed(false)
        .compile()
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "error: OUT_DIR is not set: call arbor_build from build.rs, or set Builder::out_dir"
    );
}

/// `docs/routing.md` shows an excerpt of the `mixed` fixture's generated file. Each part of it
/// between `// ..` lines must be a verbatim run of lines of `expected.rs`, in order, with the
/// crate folder written `/path/to/your-crate` instead of `$FIXTURE`; so the doc shows real
/// output and goes stale the moment the generator changes.
#[test]
fn docs_routing_excerpt_is_cut_from_the_mixed_fixture() {
    const MARKER: &str = "<!-- excerpt of build-support/tests/fixtures/mixed/expected.rs;";
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/routing.md");
    let doc = std::fs::read_to_string(&doc_path)
        .unwrap()
        .replace("\r\n", "\n");
    let after_marker = doc
        .split_once(MARKER)
        .unwrap_or_else(|| panic!("{} has no `{MARKER}` line", doc_path.display()))
        .1;
    let excerpt = after_marker
        .split_once("```rust,ignore\n")
        .and_then(|(_, rest)| rest.split_once("\n```"))
        .map(|(code, _)| code)
        .expect("a ```rust,ignore block after the marker");
    let fixture = std::fs::read_to_string(fixtures().join("mixed/expected.rs"))
        .unwrap()
        .replace("\r\n", "\n");
    let fixture_lines: Vec<&str> = fixture.lines().collect();

    let excerpt = excerpt.replace("/path/to/your-crate", PLACEHOLDER);
    let mut parts: Vec<Vec<&str>> = vec![Vec::new()];
    for line in excerpt.lines() {
        if line.trim() == "// .." {
            parts.push(Vec::new());
        } else {
            parts.last_mut().unwrap().push(line);
        }
    }
    assert!(parts.len() > 1, "the excerpt has no `// ..` elisions");
    let mut from = 0;
    for part in &parts {
        assert!(!part.is_empty(), "an empty part between `// ..` lines");
        let found = (from..=fixture_lines.len().saturating_sub(part.len()))
            .find(|&start| fixture_lines[start..start + part.len()] == part[..]);
        match found {
            Some(start) => from = start + part.len(),
            None => panic!(
                "this part of the excerpt in {} is not in tests/fixtures/mixed/expected.rs \
                 (after line {from}); copy it again from the fixture:\n{}",
                doc_path.display(),
                part.join("\n")
            ),
        }
    }
    // The excerpt starts where the file starts.
    assert_eq!(parts[0][0], fixture_lines[0]);
}
