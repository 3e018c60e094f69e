//! The log subscriber of the `llmgate` binaries (shared with `llmgate-mock` by `#[path]`).

/// Installs the `tracing` subscriber on stderr: `RUST_LOG` filters (default `info`); JSON lines
/// when the `JSON_LOGS` environment variable is on (see [`json_logs_env`]).
// Used by `llmgate-mock`; the gateway picks the format from its config.
#[allow(dead_code)]
pub(crate) fn init_tracing() -> LogGuard {
    init_tracing_with(json_logs_env())
}

/// Keeps the log writer thread running: lines still queued are written when it is dropped.
/// Hold it until the process exits.
#[must_use = "dropping the guard stops the log writer"]
pub(crate) struct LogGuard {
    _writer: Option<tracing_appender::non_blocking::WorkerGuard>,
}

impl std::fmt::Debug for LogGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogGuard").finish_non_exhaustive()
    }
}

/// Installs the `tracing` subscriber on stderr: `RUST_LOG` filters (default `info`); one JSON
/// object per line when `json` is set (`timestamp`, `level`, `message` and the event's fields at
/// the top level), else text. Does nothing when a subscriber is already installed.
///
/// Lines are handed to a writer thread (`tracing-appender`'s non-blocking writer), so a serving
/// thread never waits on stderr: the access log's line per request costs a formatted line and a
/// channel send, not a `write` system call. When the writer falls behind by more than its queue
/// (128 000 lines), further lines are dropped rather than slowing requests.
pub(crate) fn init_tracing_with(json: bool) -> LogGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = !json
        && std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .thread_name("llmgate-log")
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(writer);
    let installed = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    } else {
        builder.with_ansi(ansi).try_init()
    };
    LogGuard {
        _writer: installed.ok().map(|()| guard),
    }
}

/// Whether the `JSON_LOGS` environment variable asks for JSON logs: set to anything but an empty
/// string, `0`, `false`, `no` or `off` (LiteLLM's switch).
#[must_use]
pub(crate) fn json_logs_env() -> bool {
    std::env::var("JSON_LOGS").is_ok_and(|v| {
        let v = v.trim().to_ascii_lowercase();
        !matches!(v.as_str(), "" | "0" | "false" | "no" | "off")
    })
}
