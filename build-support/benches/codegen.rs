//! Scan + generate time for synthetic route trees of 10 to 10,000 route files.
//!
//! ```text
//! cargo bench -p arbor-build --bench codegen
//! ```
//!
//! Each tree mixes every segment kind (static, dynamic, catch-all, optional catch-all, groups
//! with folder middleware) and realistic handler files with typed `Path` params. The report
//! gives the median of several runs of `Builder::route_table` (discover + parse + validate) and
//! `Builder::generate` (all of that plus code emission and pretty-printing), and the cost per
//! route, which stays flat when growth is linear.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

fn route_file(kind: usize) -> &'static str {
    match kind {
        0 => "use arbor::Json;\nuse serde_json::{json, Value};\n\npub async fn GET() -> Json<Value> {\n    Json(json!({ \"ok\": true }))\n}\n\npub async fn POST(Json(body): Json<Value>) -> Json<Value> {\n    Json(body)\n}\n",
        1 => "use arbor::{Json, Path};\nuse serde::Deserialize;\nuse serde_json::{json, Value};\n\n#[derive(Deserialize)]\npub struct Params {\n    id: u64,\n}\n\n#[arbor::handler(crate::auth, rate_limit(limit = 5, window = 60))]\npub async fn GET(Path(params): Path<Params>) -> Json<Value> {\n    Json(json!({ \"id\": params.id }))\n}\n\npub async fn DELETE(Path(id): Path<u64>) -> Json<Value> {\n    Json(json!({ \"deleted\": id }))\n}\n",
        2 => "use arbor::{Json, Path};\nuse serde_json::{json, Value};\n\npub async fn GET(Path(rest): Path<Vec<String>>) -> Json<Value> {\n    Json(json!({ \"rest\": rest }))\n}\n",
        _ => "use arbor::{Json, Path};\nuse serde::Deserialize;\nuse serde_json::{json, Value};\n\n#[derive(Deserialize)]\npub struct Params {\n    slug: Option<Vec<String>>,\n}\n\npub async fn GET(Path(params): Path<Params>) -> Json<Value> {\n    Json(json!({ \"slug\": params.slug }))\n}\n",
    }
}

fn write_tree(root: &Path, routes: usize) {
    let api = root.join("app/api");
    for group in 0..10 {
        let dir = api.join(format!("(g{group})"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("middleware.rs"),
            "arbor::middleware!(crate::audit);\n",
        )
        .unwrap();
    }
    for i in 0..routes {
        let kind = i % 4;
        let folder = match kind {
            0 => format!("(g{})/s{i}", i % 10),
            1 => format!("d{}/n{i}/[id]", i % 50),
            2 => format!("c{i}/[...rest]"),
            _ => format!("o{i}/[[...slug]]"),
        };
        let dir = api.join(folder);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("route.rs"), route_file(kind)).unwrap();
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn measure(runs: usize, mut f: impl FnMut()) -> Duration {
    f(); // warm the page cache and allocator
    median(
        (0..runs)
            .map(|_| {
                let started = Instant::now();
                f();
                started.elapsed()
            })
            .collect(),
    )
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let sizes: &[usize] = if quick {
        &[10, 100]
    } else {
        &[10, 100, 1_000, 10_000]
    };
    println!("codegen benchmark: median of runs per size");
    println!(
        "{:>7}  {:>6}  {:>14}  {:>14}  {:>14}  {:>12}  {:>14}  {:>12}",
        "routes",
        "runs",
        "scan+validate",
        "scan+generate",
        "per route",
        "output",
        "of it contract",
        "contract"
    );
    for &size in sizes {
        let dir = tempfile::tempdir().unwrap();
        write_tree(dir.path(), size);
        let mut builder = arbor_build::Builder::new();
        builder
            .manifest_dir(dir.path())
            .emit_rerun_if_changed(false);
        let runs = if quick {
            1
        } else {
            (20_000 / size).clamp(5, 51)
        };
        let table = measure(runs, || {
            builder.route_table().unwrap();
        });
        let mut output = 0;
        let generate = measure(runs, || {
            output = builder.generate().unwrap().len();
        });
        // The same without the API contract (`routes::openapi()`): its share of the time.
        builder.openapi(false);
        let mut without_contract = 0;
        let router_only = measure(runs, || {
            without_contract = builder.generate().unwrap().len();
        });
        println!(
            "{size:>7}  {runs:>6}  {:>11.2} ms  {:>11.2} ms  {:>11.1} µs  {:>9} KiB  {:>11.2} ms  {:>9} KiB",
            table.as_secs_f64() * 1e3,
            generate.as_secs_f64() * 1e3,
            generate.as_secs_f64() * 1e6 / size as f64,
            output / 1024,
            (generate.saturating_sub(router_only)).as_secs_f64() * 1e3,
            (output - without_contract) / 1024,
        );
    }
}
