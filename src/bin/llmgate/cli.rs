//! What the `llmgate` binary does: load the config, build the gateway, serve.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use llmgate::{
    clock::Timer,
    config::{Config, Loaded},
    gateway::{Gateway, DEFAULT_CONFIG},
    governance::BuildOptions,
    provider::HttpClient,
    server::{bind_listeners, serve_per_thread, shutdown_signal, LargeBodyHooks, ServeConfig},
};

use crate::log::{init_tracing_with, json_logs_env};

/// Options of the `llmgate` binary.
#[derive(Clone, Debug)]
pub(crate) struct RunOptions {
    /// Config file; `None` serves the embedded default.
    pub(crate) config: Option<PathBuf>,
    /// Listen host.
    pub(crate) host: String,
    /// Listen port.
    pub(crate) port: u16,
    /// Serving threads, each with its own single-threaded runtime and listening socket
    /// (default: one per core).
    pub(crate) num_workers: Option<usize>,
    /// Only validate the config.
    pub(crate) check: bool,
    /// Grace period for in-flight requests at shutdown.
    pub(crate) grace_period: Duration,
}

/// How long shutdown waits for the database to take the last spend rows.
const SPEND_FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

fn opts_config(path: &Option<PathBuf>) -> Option<&PathBuf> {
    path.as_ref()
}

/// The directory of the config file (the SQLite file goes beside it).
fn opts_config_dir(path: Option<&PathBuf>) -> Option<PathBuf> {
    let p = path?;
    let dir = p.parent().map_or_else(|| PathBuf::from("."), PathBuf::from);
    Some(if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    })
}

/// Whether the log is JSON lines: `litellm_settings.json_logs: true`, or `JSON_LOGS`.
#[must_use]
pub(crate) fn json_logs(config: &Config) -> bool {
    config.litellm_settings.json_logs == Some(true) || json_logs_env()
}

/// Loads the config named by `path`, or the embedded default.
pub(crate) fn load_config(path: Option<&PathBuf>) -> Result<Loaded, String> {
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

/// `--check`: every problem of the config in one report, errors first, in the user's words.
/// `Err` (exit 1) when start-up would fail.
pub(crate) fn check(path: Option<&PathBuf>) -> Result<String, String> {
    let origin = path.map_or_else(
        || "<embedded default config>".to_owned(),
        |p| p.display().to_string(),
    );
    let checked = Config::check(
        path.map(PathBuf::as_path),
        DEFAULT_CONFIG,
        "<embedded default config>",
    );
    // The gateway is built from what could be read, so unpriced models and unsupported
    // providers are listed beside the config's own errors.
    let gateway = Gateway::from_config(&checked.config, &HttpClient::new());
    // The binary starts the tracer itself: what `--check` reports is whether the OTEL_*
    // variables can be used.
    let warnings: Vec<&String> = checked
        .warnings
        .iter()
        .chain(gateway.warnings())
        .filter(|w| !crate::otel::is_not_started_warning(w))
        .collect();
    let otel = crate::otel::check(&checked.config).err();
    // The upstream TLS and proxy settings (files read, URLs parsed) as start-up would.
    let upstream = HttpClient::from_config(&checked.config).err();
    let errors =
        checked.errors.len() + usize::from(upstream.is_some()) + usize::from(otel.is_some());
    let mut out = String::new();
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    if errors == 0 {
        out.push_str(&format!(
            "{origin}: config OK ({}, {}, {})",
            plural(gateway.router().model_names().len(), "model group"),
            plural(checked.config.model_list.len(), "deployment"),
            plural(warnings.len(), "warning"),
        ));
    } else {
        out.push_str(&format!(
            "{origin}: config has {} and {}; llmgate would not start",
            plural(errors, "error"),
            plural(warnings.len(), "warning"),
        ));
    }
    for e in &checked.errors {
        out.push_str(&format!("\n  error: {}: {}", key_or_file(&e.key), e.reason));
    }
    if let Some(e) = upstream {
        out.push_str(&format!("\n  error: {e}"));
    }
    if let Some(e) = otel {
        out.push_str(&format!("\n  error: {e}"));
    }
    for w in warnings {
        out.push_str(&format!("\n  warning: {w}"));
    }
    if errors == 0 {
        Ok(out)
    } else {
        Err(out)
    }
}

fn key_or_file(key: &str) -> &str {
    if key.is_empty() {
        "(file)"
    } else {
        key
    }
}

/// Raises the soft limit on open files to the hard limit, as Go's runtime does at start: the
/// usual soft limit (1024) is a legacy of `select(2)`, and a gateway holds a descriptor per client
/// and per upstream connection. Failing to raise it is logged, not fatal.
fn raise_fd_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::debug!(limit = n, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
    }
}

/// Runs the binary: `--check`, or serve until SIGTERM/SIGINT. Installs the log subscriber once the
/// config is read ([`json_logs`] picks the format), unless one is installed already.
pub(crate) fn run(opts: RunOptions) -> Result<(), String> {
    if opts.check {
        let report = check(opts.config.as_ref())?;
        println!("{report}");
        return Ok(());
    }
    let loaded = load_config(opts.config.as_ref())?;
    let _log = init_tracing_with(json_logs(&loaded.config));
    raise_fd_limit();
    let origin = opts.config.as_ref().map_or_else(
        || "<embedded default config>".to_owned(),
        |p| p.display().to_string(),
    );
    for w in &loaded.warnings {
        tracing::warn!("{origin}: {w}");
    }
    // Requests are served by one single-threaded runtime per worker thread (`serve_per_thread`);
    // this runtime runs start-up, signals and background work (spend writer, database, Redis).
    let workers = opts
        .num_workers
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let opts_path = opts.config.clone();
    rt.block_on(async move {
        // Proxies and CA bundles from the environment, TLS keys from the config: read once.
        let client = HttpClient::from_config(&loaded.config).map_err(|e| format!("{origin}: {e}"))?;
        // Every per-request deadline (the edge's, the timeout layer's) goes to one timer thread,
        // so a serving thread with nothing else due parks without a kernel timer.
        let timer = Timer::dedicated().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "could not start the timer thread; deadlines stay on the serving threads");
            Timer::current()
        });
        // `callbacks: ["otel"]`: the tracer starts before the gateway is built (which picks it
        // up), from the OTEL_* variables; a variable that cannot be used stops start-up.
        let otel = crate::otel::start(&loaded.config).map_err(|e| format!("{origin}: {e}"))?;
        let mut build_opts = BuildOptions::default();
        build_opts.timer = timer;
        if let Some(dir) = opts_config_dir(opts_config(&opts_path)) {
            build_opts = build_opts.config_dir(dir);
        }
        // A config that asks for no governance (no master key, no database) runs the
        // database-free stack.
        let gateway = if !llmgate::governance::wanted(&loaded.config) {
            Gateway::from_config_opts(
                &loaded.config,
                &client,
                &build_opts,
                llmgate::provider::Providers::builtin(),
            )
        } else {
            Gateway::build(&loaded.config, &client, build_opts)
                .await
                .map_err(|e| format!("{origin}: {e}"))?
        };
        for w in gateway.warnings() {
            tracing::warn!("{origin}: {w}");
        }
        let addr: SocketAddr = format!("{}:{}", opts.host, opts.port)
            .parse()
            .or_else(|_| format!("[{}]:{}", opts.host, opts.port).parse())
            .map_err(|e| format!("invalid --host/--port: {e}"))?;
        let listeners = bind_listeners(addr, workers)
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let gs = &loaded.config.general_settings;
        let auth = match (&gs.master_key, gs.master_key_from_env) {
            (Some(_), false) => "general_settings.master_key",
            (Some(_), true) => "LITELLM_MASTER_KEY",
            (None, _) => {
                tracing::warn!(
                    "AUTHENTICATION IS OFF: no master key is configured (neither general_settings.master_key nor LITELLM_MASTER_KEY), so every caller may use every model and no key, budget or rate limit applies"
                );
                "none"
            }
        };
        crate::reload_on_sighup(gateway.models().clone(), opts_path.clone());
        tracing::info!(
            %addr,
            workers,
            models = ?gateway.router().model_names(),
            auth,
            database = gateway.governance().map_or("none", |g| g.database.as_str()),
            "llmgate listening"
        );
        // Freed large bodies go back to the OS within a second (see `crate::alloc`).
        if !crate::alloc::start_janitor() {
            tracing::warn!("could not start the memory janitor thread");
        }
        let served = serve_per_thread(
            listeners,
            gateway.app().large_body_hooks(Some(LargeBodyHooks {
                on_read: crate::alloc::note_large,
                after_call: crate::alloc::collect_this_thread,
            })),
            ServeConfig::from_config(&loaded.config)
                .grace_period(opts.grace_period)
                .timer(timer),
            shutdown_signal(),
        )
        .await
        .map_err(|e| format!("server error: {e}"));
        // Requests are done: write every queued spend row before exiting.
        if let Some(stats) = gateway.shutdown(SPEND_FLUSH_TIMEOUT).await {
            if stats.dropped > 0 {
                tracing::error!(dropped = stats.dropped, "spend-log rows were lost");
            }
        }
        // And export the last spans.
        crate::otel::shutdown(otel).await;
        served
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_logs_follow_the_config() {
        let on = Config::from_yaml_str("litellm_settings:\n  json_logs: true\n", "t").unwrap();
        assert!(json_logs(&on.config));
        if !json_logs_env() {
            let off =
                Config::from_yaml_str("litellm_settings:\n  json_logs: false\n", "t").unwrap();
            assert!(!json_logs(&off.config));
        }
    }
}
