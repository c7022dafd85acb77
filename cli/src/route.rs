//! `cargo arbor route`: a route file whose handler signatures fit its folders, and its test.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use arbor_build::{Method, Segment};

/// `cargo arbor route`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The folders under `app/api`, in Next.js notation: `users/[id]`, `docs/[[...slug]]`,
    /// `(admin)/reports`.
    path: String,
    /// The handlers to export, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "GET")]
    methods: Vec<String>,
}

pub(crate) fn run(args: &Args) -> Result<ExitCode, String> {
    let root = crate::crate_root()?;
    let route = NewRoute::parse(&args.path, &args.methods)?;
    let file = root.join("app/api").join(&route.folder).join("route.rs");
    if file.exists() {
        return Err(format!("{} already exists", file.display()));
    }
    // Folders made for this route, deepest first, to remove them if the build refuses it.
    let mut created: Vec<PathBuf> = file
        .parent()
        .into_iter()
        .flat_map(Path::ancestors)
        .take_while(|dir| !dir.exists())
        .map(Path::to_path_buf)
        .collect();
    crate::new::write(&file, &route.source())?;
    // The build's own validation decides, so a conflict reads exactly as `cargo build` says it.
    if let Err(error) = crate::builder(&root).route_table() {
        let _ = std::fs::remove_file(&file);
        created.sort_by_key(|dir| std::cmp::Reverse(dir.components().count()));
        for dir in created {
            let _ = std::fs::remove_dir(dir);
        }
        eprintln!("{error}");
        eprintln!("nothing was written");
        return Ok(ExitCode::FAILURE);
    }
    rustfmt(&file);
    println!("created {}", file.display());
    match crate_name(&root) {
        Some(crate_name) if has_app_fn(&root) => {
            let test = root.join("tests").join(format!("{}.rs", route.test_name()));
            if test.exists() {
                println!("kept {} (it exists)", test.display());
            } else {
                crate::new::write(&test, &route.test(&crate_name))?;
                rustfmt(&test);
                println!("created {}", test.display());
            }
        }
        _ => println!("no test written: the crate has no `pub fn app()` in src/lib.rs to call"),
    }
    Ok(ExitCode::SUCCESS)
}

/// A route to create: its folder, segments and methods.
#[derive(Debug)]
struct NewRoute {
    folder: PathBuf,
    segments: Vec<Segment>,
    methods: Vec<Method>,
}

impl NewRoute {
    fn parse(path: &str, methods: &[String]) -> Result<Self, String> {
        let mut segments = Vec::new();
        for name in path.split('/').filter(|s| !s.is_empty()) {
            segments.push(Segment::parse(name).map_err(|e| {
                format!(
                    "the folder `{}` {}\n  help: {}",
                    e.segment, e.problem, e.help
                )
            })?);
        }
        let mut parsed = Vec::new();
        for name in methods {
            let method = Method::from_export(&name.trim().to_ascii_uppercase())
                .ok_or_else(|| format!("`{name}` is not a method a route file exports"))?;
            if !parsed.contains(&method) {
                parsed.push(method);
            }
        }
        if parsed.is_empty() {
            return Err("give at least one method with --methods".into());
        }
        parsed.sort();
        Ok(Self {
            folder: path.split('/').filter(|s| !s.is_empty()).collect(),
            segments,
            methods: parsed,
        })
    }

    /// The URL, in folder notation, under `/api`.
    fn url(&self) -> String {
        let mut url = String::from("/api");
        for segment in &self.segments {
            match segment {
                Segment::Group(_) => {}
                Segment::Static(name) => write!(url, "/{name}").unwrap_or_default(),
                Segment::Dynamic(name) => write!(url, "/[{name}]").unwrap_or_default(),
                Segment::CatchAll(name) => write!(url, "/[...{name}]").unwrap_or_default(),
                Segment::OptionalCatchAll(name) => {
                    write!(url, "/[[...{name}]]").unwrap_or_default();
                }
            }
        }
        url
    }

    /// A URL the test can call: `1` for a parameter, `a/b` for a catch-all.
    fn sample_url(&self) -> String {
        let mut url = String::from("/api");
        for segment in &self.segments {
            match segment {
                Segment::Group(_) | Segment::OptionalCatchAll(_) => {}
                Segment::Static(name) => write!(url, "/{name}").unwrap_or_default(),
                Segment::Dynamic(_) => url.push_str("/1"),
                Segment::CatchAll(_) => url.push_str("/a/b"),
            }
        }
        url
    }

    /// The `Params` fields, one per dynamic folder, typed as the build checks them.
    fn params(&self) -> Vec<(String, &'static str)> {
        self.segments
            .iter()
            .filter_map(|segment| match segment {
                Segment::Dynamic(name) => Some((name.clone(), "String")),
                Segment::CatchAll(name) => Some((name.clone(), "Vec<String>")),
                Segment::OptionalCatchAll(name) => Some((name.clone(), "Option<Vec<String>>")),
                _ => None,
            })
            .collect()
    }

    fn source(&self) -> String {
        let params = self.params();
        let methods: Vec<&str> = self.methods.iter().map(|m| m.as_str()).collect();
        let mut out = format!("//! `{} {}`.\n\n", methods.join(", "), self.url());
        let reads_body = self
            .methods
            .iter()
            .any(|m| matches!(m, Method::Post | Method::Put | Method::Patch));
        let answers_json = self.methods.iter().any(|m| *m != Method::Delete);
        let mut imports = vec!["ApiError"];
        if answers_json || reads_body {
            imports.push("Json");
        }
        if !params.is_empty() {
            imports.push("Path");
        }
        writeln!(out, "use arbor::{{{}}};", imports.join(", ")).unwrap_or_default();
        if self.methods.contains(&Method::Delete) {
            out.push_str("use arbor::http::StatusCode;\n");
        }
        if !params.is_empty() {
            out.push_str("use serde::Deserialize;\n");
        }
        if answers_json {
            out.push_str("use serde_json::{json, Value};\n");
        } else if reads_body {
            out.push_str("use serde_json::Value;\n");
        }
        if !params.is_empty() {
            out.push_str(
                "\n/// The folders' parameters: the build checks these names and types.\n",
            );
            out.push_str("#[derive(Debug, Deserialize)]\npub struct Params {\n");
            for (name, ty) in &params {
                writeln!(out, "    pub {name}: {ty},").unwrap_or_default();
            }
            out.push_str("}\n");
        }
        for method in &self.methods {
            out.push('\n');
            out.push_str(&self.handler(*method, !params.is_empty()));
        }
        out
    }

    fn handler(&self, method: Method, has_params: bool) -> String {
        let mut arguments = Vec::new();
        if has_params {
            arguments.push("Path(params): Path<Params>");
        }
        let reads_body = matches!(method, Method::Post | Method::Put | Method::Patch);
        if reads_body {
            arguments.push("Json(body): Json<Value>");
        }
        let name = method.as_str();
        let (output, body) = match method {
            Method::Delete => (
                "Result<StatusCode, ApiError>",
                "    Ok(StatusCode::NO_CONTENT)".to_owned(),
            ),
            _ => {
                let mut fields = Vec::new();
                if has_params {
                    fields.push("\"params\": format!(\"{params:?}\")");
                }
                if reads_body {
                    fields.push("\"received\": body");
                }
                (
                    "Result<Json<Value>, ApiError>",
                    format!("    Ok(Json(json!({{ {} }})))", fields.join(", ")),
                )
            }
        };
        let unused = if has_params && method == Method::Delete {
            "    let _ = params;\n"
        } else {
            ""
        };
        format!(
            "/// TODO: what `{name}` does.\npub async fn {name}({}) -> {output} {{\n{unused}{body}\n}}\n",
            arguments.join(", ")
        )
    }

    fn test_name(&self) -> String {
        let mut name = String::new();
        for segment in &self.segments {
            let word = match segment {
                Segment::Group(_) => continue,
                Segment::Static(name)
                | Segment::Dynamic(name)
                | Segment::CatchAll(name)
                | Segment::OptionalCatchAll(name) => name,
            };
            if !name.is_empty() {
                name.push('_');
            }
            name.extend(word.chars().map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            }));
        }
        if name.is_empty() {
            name.push_str("root");
        }
        format!("route_{name}")
    }

    fn test(&self, crate_name: &str) -> String {
        let method = self.methods[0];
        let call = match method {
            Method::Get => "client.get(URL)".to_owned(),
            Method::Post | Method::Put | Method::Patch => format!(
                "client\n        .request(Method::{}, URL)\n        .json(&serde_json::json!({{}}))",
                method.as_str()
            ),
            other => format!("client.request(Method::{}, URL)", other.as_str()),
        };
        let status = if method == Method::Delete { 204 } else { 200 };
        let import = if method == Method::Get {
            ""
        } else {
            "use arbor::http::Method;\n"
        };
        format!(
            "//! `{url}` (`app/api/{folder}/route.rs`), in-process.\n\n{import}use arbor::test::TestClient;\n\n\
             const URL: &str = \"{sample}\";\n\n\
             #[tokio::test]\nasync fn {test}_answers() {{\n    let client = TestClient::new({crate_name}::app());\n    \
             let response = {call}.send().await;\n    assert_eq!(response.status(), {status}, \"{{}}\", response.text());\n}}\n",
            url = self.url(),
            folder = self.folder.display(),
            sample = self.sample_url(),
            test = self.test_name(),
        )
    }
}

/// Formats a written file as `cargo fmt` would (route files are outside its reach); without a
/// `rustfmt`, the file stays as generated.
fn rustfmt(file: &Path) {
    let _ = std::process::Command::new("rustfmt")
        .args(["--edition", "2021"])
        .arg(file)
        .status();
}

/// The package's library name, from `Cargo.toml`.
fn crate_name(root: &Path) -> Option<String> {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).ok()?;
    let package = manifest.split("[package]").nth(1)?;
    let line = package
        .lines()
        .find(|l| l.trim_start().starts_with("name"))?;
    let name = line.split('"').nth(1)?;
    Some(name.replace('-', "_"))
}

fn has_app_fn(root: &Path) -> bool {
    std::fs::read_to_string(root.join("src/lib.rs")).is_ok_and(|lib| lib.contains("pub fn app("))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str, methods: &[&str]) -> NewRoute {
        let methods: Vec<String> = methods.iter().map(|m| (*m).to_owned()).collect();
        NewRoute::parse(path, &methods).unwrap()
    }

    #[test]
    fn params_fit_the_folders() {
        let route = route("(shop)/orgs/[org]/files/[...path]", &["get", "PATCH"]);
        assert_eq!(route.url(), "/api/orgs/[org]/files/[...path]");
        assert_eq!(route.sample_url(), "/api/orgs/1/files/a/b");
        let source = route.source();
        assert!(source.contains("pub org: String,"), "{source}");
        assert!(source.contains("pub path: Vec<String>,"), "{source}");
        assert!(
            source.contains("pub async fn GET(Path(params): Path<Params>)"),
            "{source}"
        );
        assert!(
            source.contains(
                "pub async fn PATCH(Path(params): Path<Params>, Json(body): Json<Value>)"
            ),
            "{source}"
        );
        assert_eq!(route.test_name(), "route_orgs_org_files_path");
    }

    #[test]
    fn mistakes_are_refused_before_anything_is_written() {
        let methods = ["GET".to_owned()];
        assert!(NewRoute::parse("users/[id", &methods).is_err());
        assert!(NewRoute::parse("users", &["FETCH".to_owned()]).is_err());
        assert!(NewRoute::parse("users", &[]).is_err());
    }
}
