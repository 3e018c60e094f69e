//! The `llmgate` gateway binary: reads arguments, then runs [`cli::run`]: config, gateway, serve.
//! The allocator (`alloc`), the runner (`cli`) and the log set-up (`log`) are the binary's own
//! modules, not the library's.

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use llmgate::{config::Config, gateway::LiveModels};

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

/// Re-reads `path` on every `SIGHUP` and serves its `model_list` and routing settings from the
/// next request on (see `docs/operations.md`, "Model management"). A file that does not load
/// changes nothing: every problem is logged and the running config stays. Requests in flight
/// finish on the deployments they started with. Call it inside the runtime that serves.
pub(crate) fn reload_on_sighup(models: LiveModels, path: Option<PathBuf>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP: config reload is off");
                return;
            }
        };
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                reload(&models, path.as_ref());
            }
        });
    }
    #[cfg(not(unix))]
    {
        let _ = (models, path);
    }
}

/// One reload: load and check the whole file first, then swap.
fn reload(models: &LiveModels, path: Option<&PathBuf>) {
    let Some(path) = path else {
        tracing::info!("SIGHUP: running the embedded default config; nothing to reload");
        return;
    };
    let origin = path.display();
    match Config::from_path(path) {
        Err(errors) => {
            tracing::error!(
                problems = errors.0.len(),
                "{origin}: config reload refused; the running config stays"
            );
            for e in &errors.0 {
                tracing::error!("{origin}: {e}");
            }
        }
        Ok(loaded) => {
            for w in &loaded.warnings {
                tracing::warn!("{origin}: {w}");
            }
            for w in models.reload_config(&loaded.config) {
                tracing::warn!("{origin}: {w}");
            }
            tracing::info!(
                models = ?models.router().current().model_names(),
                "{origin}: config reloaded (model_list and routing settings; other settings take effect at restart)"
            );
        }
    }
}
