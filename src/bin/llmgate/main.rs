//! The `llmgate` gateway binary: reads arguments, then runs [`cli::run`]: config, gateway, serve.
//! The allocator (`alloc`), the runner (`cli`) and the log set-up (`log`) are the binary's own
//! modules, not the library's.

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;

mod alloc;
mod cli;
mod log;
mod otel;

// mimalloc, called the fast way: see `alloc`.
#[global_allocator]
static GLOBAL: alloc::MiMalloc = alloc::MiMalloc;

/// llmgate: one OpenAI-format API for every LLM provider. Reads LiteLLM's config.yaml.
#[derive(Debug, Parser)]
#[command(name = "llmgate", version, about)]
struct Args {
    /// LiteLLM-format config.yaml (default: the embedded mock config).
    #[arg(long, short = 'c', env = "LLMGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    host: String,
    /// Port to listen on.
    #[arg(long, short = 'p', default_value_t = 4000, env = "PORT")]
    port: u16,
    /// Worker threads (LiteLLM's `--num_workers`; default: one per core).
    #[arg(long = "num_workers", alias = "num-workers")]
    num_workers: Option<usize>,
    /// Validate the config, print every problem, and exit (0 when valid).
    #[arg(long)]
    check: bool,
    /// Seconds in-flight requests may run after SIGTERM/SIGINT.
    #[arg(
        long = "graceful_timeout",
        alias = "graceful-timeout",
        default_value_t = 30.0
    )]
    graceful_timeout: f64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // `cli::run` installs the log subscriber once the config says whether it is JSON.
    let opts = cli::RunOptions {
        config: args.config,
        host: args.host,
        port: args.port,
        num_workers: args.num_workers,
        check: args.check,
        grace_period: std::time::Duration::from_secs_f64(args.graceful_timeout.clamp(0.0, 3600.0)),
    };
    match cli::run(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}
