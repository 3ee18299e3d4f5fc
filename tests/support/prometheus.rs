//! A real Prometheus server for tests: backfilled with `promtool tsdb
//! create-blocks-from openmetrics`, started on 127.0.0.1 on a free port,
//! killed on drop (even when an assertion fails), restartable on the same
//! port and data directory.
//!
//! Included with `#[path = "support/prometheus.rs"] mod prometheus;` by the
//! test crates that need it, so the others do not compile it.
#![allow(dead_code)] // each test crate uses a subset

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How to install what these tests need.
pub const INSTALL_HINT: &str = "install it with `apt-get install -y prometheus` \
    (as root; or run tests/install-deps.sh)";

/// How long Prometheus may take to become ready.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// Runs `tool --version`, failing (never skipping) when it is not installed.
pub fn require(tool: &str) {
    match Command::new(tool).arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "`{tool} --version` failed ({}): {}; {INSTALL_HINT}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("`{tool}` is required but cannot be run ({e}); {INSTALL_HINT}"),
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `--web.config.file` (TLS, basic auth) and how to reach the server then.
pub struct Web {
    /// The web config YAML; paths in it must be absolute.
    pub config: String,
    /// Whether the server speaks https.
    pub https: bool,
    /// A client that passes the server's TLS and auth, for the readiness
    /// check (basic auth is its own header: see `ready_auth`).
    pub client: reqwest::Client,
    /// `(user, password)` for the readiness check.
    pub ready_auth: Option<(String, String)>,
}

/// A Prometheus server on a temporary TSDB; killed on drop.
pub struct Prometheus {
    /// The running server, if any.
    child: Option<Child>,
    /// Base URL.
    pub url: String,
    /// Its port, kept across restarts.
    pub port: u16,
    /// Server log (stdout and stderr).
    log: PathBuf,
    /// Command-line arguments, to restart identically.
    args: Vec<String>,
    /// TLS and auth, if any.
    web: Option<Web>,
    /// The temporary directory with the TSDB, configs and log.
    dir: TempDir,
}

impl Prometheus {
    /// Backfills `om` (OpenMetrics text ending in `# EOF`) and starts a
    /// plain-HTTP server on it, waiting until it is ready.
    pub async fn start(om: &str) -> Prometheus {
        Self::start_with(om, None).await
    }

    /// Like [`Prometheus::start`], with TLS and auth.
    pub async fn start_with(om: &str, web: Option<Web>) -> Prometheus {
        require("promtool");
        require("prometheus");
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let om_file = dir.path().join("backfill.om");
        std::fs::write(&om_file, om).unwrap();
        let t = Instant::now();
        let out = Command::new("promtool")
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            // Default 2h blocks make a months-long backfill slow.
            .arg("--max-block-duration=720h")
            .arg(&om_file)
            .arg(&data)
            .output()
            .unwrap_or_else(|e| panic!("cannot run promtool ({e}); {INSTALL_HINT}"));
        assert!(
            out.status.success(),
            "promtool backfill failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("backfill took {:?}", t.elapsed());

        let config = dir.path().join("prometheus.yml");
        // No scrape configs: the server only serves the backfilled blocks.
        std::fs::write(&config, "global:\n  evaluation_interval: 1m\n").unwrap();
        let port = free_port();
        let mut args = vec![
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", data.display()),
            // Backfilled data may be years old: retention must not delete it.
            "--storage.tsdb.retention.time=100y".to_string(),
            format!("--web.listen-address=127.0.0.1:{port}"),
            // The checks depend on it; pin it rather than rely on the default.
            "--query.lookback-delta=5m".to_string(),
        ];
        if let Some(w) = &web {
            let path = dir.path().join("web.yml");
            std::fs::write(&path, &w.config).unwrap();
            args.push(format!("--web.config.file={}", path.display()));
        }
        let scheme = if web.as_ref().is_some_and(|w| w.https) {
            "https"
        } else {
            "http"
        };
        let mut prom = Prometheus {
            child: None,
            url: format!("{scheme}://127.0.0.1:{port}"),
            port,
            log: dir.path().join("prometheus.log"),
            args,
            web,
            dir,
        };
        prom.launch().await;
        eprintln!("prometheus ready after {:?} at {}", t.elapsed(), prom.url);
        prom
    }

    /// The temporary directory (for certificates and other files the test
    /// wants cleaned up with the server).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    async fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new("prometheus")
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start prometheus ({e}); {INSTALL_HINT}"));
        self.child = Some(child);
        self.wait_ready().await;
    }

    async fn wait_ready(&mut self) {
        let http = match &self.web {
            Some(w) => w.client.clone(),
            None => reqwest::Client::builder()
                .timeout(Duration::from_secs(1))
                .build()
                .unwrap(),
        };
        let ready = format!("{}/-/ready", self.url);
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("prometheus exited early ({status}):\n{}", self.log_tail());
            }
            let mut req = http.get(&ready);
            if let Some((u, p)) = self.web.as_ref().and_then(|w| w.ready_auth.as_ref()) {
                req = req.basic_auth(u, Some(p));
            }
            if let Ok(resp) = req.send().await
                && resp.status().as_u16() == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready within {READY_WITHIN:?}:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The last lines of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Whether the server process is running.
    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server and reaps it; the data stays for a restart.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and data directory.
    pub async fn restart(&mut self) {
        self.stop();
        self.launch().await;
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.stop();
    }
}
