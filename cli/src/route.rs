//! `cargo arbor route`: a route file whose handler signatures fit its folders, and its test.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use arbor_build::{Method, Route, Segment, SegmentConfig};

/// The URL prefix of arbor-build's default layout, which the commands read.
const URL_PREFIX: &str = "/api";

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
    let file = root.join(&route.route.file);
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

/// A route to create: the build's model of it (its file and folders) and its methods.
#[derive(Debug)]
struct NewRoute {
    route: Route,
    methods: Vec<Method>,
}

impl NewRoute {
    fn parse(path: &str, methods: &[String]) -> Result<Self, String> {
        let folders: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let mut segments = Vec::new();
        for name in &folders {
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
        let file: PathBuf = ["app", "api"]
            .into_iter()
            .chain(folders)
            .chain(["route.rs"])
            .collect();
        Ok(Self {
            route: Route {
                file,
                segments,
                handlers: Vec::new(),
                file_middleware: None,
                folder_middleware: Vec::new(),
                config: SegmentConfig::default(),
            },
            methods: parsed,
        })
    }

    /// The URL, in folder notation, under `/api`.
    fn url(&self) -> String {
        self.route.display_url(URL_PREFIX)
    }

    /// A URL the test can call: `1` for a parameter, `a/b` for a catch-all, nothing for an
    /// optional one.
    fn sample_url(&self) -> String {
        let mut url = String::from(URL_PREFIX);
        for segment in self.route.url_segments() {
            match segment {
                Segment::Dynamic(_) => url.push_str("/1"),
                Segment::CatchAll(_) => url.push_str("/a/b"),
                Segment::OptionalCatchAll(_) => {}
                other => {
                    url.push('/');
                    url.push_str(&other.to_string());
                }
            }
        }
        url
    }

    /// The `Params` fields, one per dynamic folder, typed as the build checks them.
    fn params(&self) -> Vec<(&str, &'static str)> {
        self.route
            .url_segments()
            .filter_map(|segment| {
                let ty = match segment {
                    Segment::Dynamic(_) => "String",
                    Segment::CatchAll(_) => "Vec<String>",
                    Segment::OptionalCatchAll(_) => "Option<Vec<String>>",
                    _ => return None,
                };
                Some((segment.param()?, ty))
            })
            .collect()
    }

    fn source(&self) -> String {
        let params = self.params();
        let has_params = !params.is_empty();
        let methods: Vec<&str> = self.methods.iter().map(|m| m.as_str()).collect();
        let mut out = format!("//! `{} {}`.\n\n", methods.join(", "), self.url());
        let answers_json = self.methods.iter().any(|m| *m != Method::Delete);
        let mut imports = vec!["ApiError"];
        if answers_json {
            imports.push("Json");
        }
        if has_params {
            imports.push("Path");
        }
        out += &format!("use arbor::{{{}}};\n", imports.join(", "));
        if self.methods.contains(&Method::Delete) {
            out += "use arbor::http::StatusCode;\n";
        }
        if has_params {
            out += "use serde::{Deserialize, Serialize};\n";
        }
        if answers_json {
            out += "use serde_json::{json, Value};\n";
        }
        if has_params {
            out += "\n/// The folders' parameters: the build checks these names and types.\n";
            out += "#[derive(Debug, Deserialize, Serialize)]\npub struct Params {\n";
            for (name, ty) in &params {
                out += &format!("    pub {name}: {ty},\n");
            }
            out += "}\n";
        }
        for method in &self.methods {
            out.push('\n');
            out += &self.handler(*method, has_params);
        }
        out
    }

    /// A handler that answers with what it was given: its parameters, and its body (a
    /// `DELETE` answers `204`).
    fn handler(&self, method: Method, has_params: bool) -> String {
        let name = method.as_str();
        let reads_body = matches!(method, Method::Post | Method::Put | Method::Patch);
        let mut arguments = Vec::new();
        let mut fields = Vec::new();
        if has_params {
            let binding = if method == Method::Delete {
                "_params"
            } else {
                "params"
            };
            arguments.push(format!("Path({binding}): Path<Params>"));
            fields.push("\"params\": params");
        }
        if reads_body {
            arguments.push("Json(body): Json<Value>".to_owned());
            fields.push("\"received\": body");
        }
        let (output, body) = match method {
            Method::Delete => ("StatusCode", "StatusCode::NO_CONTENT".to_owned()),
            _ => (
                "Json<Value>",
                format!("Json(json!({{ {} }}))", fields.join(", ")),
            ),
        };
        format!(
            "/// Answers `{name} {url}`.\npub async fn {name}({arguments}) -> Result<{output}, ApiError> {{\n    Ok({body})\n}}\n",
            url = self.url(),
            arguments = arguments.join(", "),
        )
    }

    fn test_name(&self) -> String {
        let words: Vec<String> = self
            .route
            .url_segments()
            .map(|segment| {
                segment
                    .param()
                    .map_or_else(|| segment.to_string(), str::to_owned)
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() {
                            c.to_ascii_lowercase()
                        } else {
                            '_'
                        }
                    })
                    .collect()
            })
            .collect();
        match words.is_empty() {
            true => "route_root".to_owned(),
            false => format!("route_{}", words.join("_")),
        }
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
            "//! `{url}` (`{file}`), in-process.\n\n{import}use arbor::test::TestClient;\n\n\
             const URL: &str = \"{sample}\";\n\n\
             #[tokio::test]\nasync fn {test}_answers() {{\n    let client = TestClient::new({crate_name}::app());\n    \
             let response = {call}.send().await;\n    assert_eq!(response.status(), {status}, \"{{}}\", response.text());\n}}\n",
            url = self.url(),
            file = self.route.file.display(),
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

/// The crate's library name, from `Cargo.toml`: `[lib] name`, else the package's name.
fn crate_name(root: &Path) -> Option<String> {
    let manifest = crate::manifest(root)?;
    let name = manifest
        .get("lib")
        .and_then(|lib| lib.get("name"))
        .or_else(|| manifest.get("package")?.get("name"))?
        .as_str()?;
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
