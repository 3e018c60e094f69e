//! The real `llmgate` binary as a child process, and the Python interpreter for the OpenAI SDK
//! tests.

use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

/// `LLMGATE_PYTHON` (set by `bash .ci/test`), else a `python3` that can `import openai`;
/// otherwise the calling test fails and says how to run it: SDK tests never skip silently.
pub fn python() -> String {
    if let Ok(p) = std::env::var("LLMGATE_PYTHON") {
        return p;
    }
    let has_sdk = Command::new("python3")
        .args(["-c", "import openai"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        has_sdk,
        "the OpenAI SDK test needs Python with the `openai` package: run `bash .ci/test` (it makes a venv), or set LLMGATE_PYTHON"
    );
    "python3".to_owned()
}

/// Runs `.ci/<script>` with `python` and `args`, asserts that it exits with success (the failure
/// message holds its output and `context()`, e.g. the gateway's log), and returns its stdout and
/// stderr.
pub async fn run_sdk_script<I, A>(
    python: &str,
    script: &str,
    args: I,
    context: impl FnOnce() -> String,
) -> (String, String)
where
    I: IntoIterator<Item = A>,
    A: AsRef<std::ffi::OsStr>,
{
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".ci")
        .join(script);
    let out = tokio::process::Command::new(python)
        .arg(&path)
        .args(args)
        .output()
        .await
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "SDK script {script} failed:\n{stdout}\n{stderr}\n{}",
        context()
    );
    (stdout, stderr)
}

/// A file in the temp directory, removed on drop.
pub struct TempFile(pub PathBuf);

impl TempFile {
    pub fn new(prefix: &str, ext: &str, text: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "{prefix}-{}-{}.{ext}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::write(&path, text).unwrap();
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `llmgate --config <file>` on a free loopback port, killed on drop. Its stderr is kept.
pub struct Binary {
    pub child: Child,
    pub addr: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Binary {
    /// Starts the binary (`DATABASE_URL` removed from its environment) and waits until it logs
    /// that it listens; a log line containing any of `refuse` fails the start.
    pub fn spawn(config: &Path, refuse: &[&str]) -> Self {
        Self::spawn_env(config, &[], refuse)
    }

    /// [`Binary::spawn`] with extra environment variables (`LITELLM_MASTER_KEY` is removed from
    /// the inherited environment unless given here).
    pub fn spawn_env(config: &Path, env: &[(&str, &str)], refuse: &[&str]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_llmgate"))
            .arg("--config")
            .arg(config)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("DATABASE_URL")
            .env_remove("LITELLM_MASTER_KEY")
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(bad) = refuse.iter().find(|r| line.contains(*r)) {
                        panic!("llmgate logged `{bad}`: {line}");
                    }
                    if line.contains("llmgate listening") {
                        break;
                    }
                }
                Err(e) => panic!(
                    "llmgate did not start ({e}):\n{}",
                    log.lock().unwrap().join("\n")
                ),
            }
        }
        // Keep draining the channel so the reader thread never blocks.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        Self {
            child,
            addr: format!("127.0.0.1:{port}"),
            log,
        }
    }

    /// Everything the binary logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
