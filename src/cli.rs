//! What the `llmgate` binary does, as a library call: load the config, build the gateway, serve.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use crate::{
    config::{Config, Loaded},
    gateway::{Gateway, DEFAULT_CONFIG},
    provider::HttpClient,
    server::{serve, shutdown_signal, ServeConfig},
};

/// Options of the `llmgate` binary.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Config file; `None` serves the embedded default.
    pub config: Option<PathBuf>,
    /// Listen host.
    pub host: String,
    /// Listen port.
    pub port: u16,
    /// Worker threads.
    pub num_workers: Option<usize>,
    /// Only validate the config.
    pub check: bool,
    /// Grace period for in-flight requests at shutdown.
    pub grace_period: Duration,
}

/// Installs the `tracing` subscriber on stderr: `RUST_LOG` filters (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Loads the config named by `path`, or the embedded default.
pub fn load_config(path: Option<&PathBuf>) -> Result<Loaded, String> {
    let loaded = match path {
        Some(p) => Config::from_path(p),
        None => Config::from_yaml_str(DEFAULT_CONFIG, "<embedded default config>"),
    };
    loaded.map_err(|errs| {
        let mut msg = format!(
            "invalid config ({} problem{}):",
            errs.0.len(),
            if errs.0.len() == 1 { "" } else { "s" }
        );
        for e in &errs.0 {
            msg.push_str("\n  ");
            msg.push_str(&e.to_string());
        }
        msg
    })
}

/// Runs the binary: `--check`, or serve until SIGTERM/SIGINT.
pub fn run(opts: RunOptions) -> Result<(), String> {
    let loaded = load_config(opts.config.as_ref())?;
    let origin = opts.config.as_ref().map_or_else(
        || "<embedded default config>".to_owned(),
        |p| p.display().to_string(),
    );
    for w in &loaded.warnings {
        tracing::warn!("{origin}: {w}");
    }
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = opts.num_workers.filter(|n| *n > 0) {
        rt.worker_threads(n);
    }
    let rt = rt
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(async move {
        let client = HttpClient::new();
        let gateway = Gateway::from_config(&loaded.config, &client);
        for w in &gateway.warnings {
            tracing::warn!("{origin}: {w}");
        }
        if opts.check {
            println!(
                "{origin}: config OK ({} model groups, {} deployments, {} warnings)",
                gateway.router.model_names().len(),
                loaded.config.model_list.len(),
                loaded.warnings.len() + gateway.warnings.len()
            );
            return Ok(());
        }
        let addr: SocketAddr = format!("{}:{}", opts.host, opts.port)
            .parse()
            .or_else(|_| format!("[{}]:{}", opts.host, opts.port).parse())
            .map_err(|e| format!("invalid --host/--port: {e}"))?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        tracing::info!(
            %addr,
            models = ?gateway.router.model_names(),
            auth = if loaded.config.general_settings.master_key.is_some() { "master_key" } else { "open" },
            "llmgate listening"
        );
        serve(
            listener,
            gateway.server(),
            ServeConfig::default().grace_period(opts.grace_period),
            shutdown_signal(),
        )
        .await
        .map_err(|e| format!("server error: {e}"))
    })
}
