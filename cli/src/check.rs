//! `cargo arbor check`: the build's route validation alone, without compiling anything.

use std::process::ExitCode;
use std::time::Instant;

/// `cargo arbor check`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Print nothing when the routes are valid.
    #[arg(long, short)]
    quiet: bool,
}

pub(crate) fn run(args: &Args) -> Result<ExitCode, String> {
    let root = crate::crate_root()?;
    let started = Instant::now();
    match crate::builder(&root).route_table() {
        Ok(table) => {
            if !args.quiet {
                println!(
                    "{} route files, {} handlers: valid ({:.1} ms)",
                    table.routes.len(),
                    table.routes.iter().map(|r| r.handlers.len()).sum::<usize>(),
                    started.elapsed().as_secs_f64() * 1e3
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!("{error}");
            Ok(ExitCode::FAILURE)
        }
    }
}
