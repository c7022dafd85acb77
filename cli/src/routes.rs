//! `cargo arbor routes`: the route table from the build's model.

use std::process::ExitCode;

use serde_json::json;

/// `cargo arbor routes`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// One JSON array, for tools.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: &Args) -> Result<ExitCode, String> {
    let root = crate::crate_root()?;
    let table = match crate::builder(&root).route_table() {
        Ok(table) => table,
        Err(error) => {
            eprintln!("{error}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let rows: Vec<(String, String, String)> = table
        .routes
        .iter()
        .flat_map(|route| {
            let url = route.display_url("/api");
            let file = route.file.display().to_string();
            route
                .handlers
                .iter()
                .map(move |handler| (handler.method.to_string(), url.clone(), file.clone()))
        })
        .collect();
    if args.json {
        let rows: Vec<_> = rows
            .iter()
            .map(|(method, url, file)| json!({ "method": method, "url": url, "file": file }))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?
        );
    } else {
        let width = rows.iter().map(|(_, url, _)| url.len()).max().unwrap_or(0);
        for (method, url, file) in &rows {
            println!("{method:<8}{url:<width$}  {file}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
