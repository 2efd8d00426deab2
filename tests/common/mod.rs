//! Test harness: starts the real `hearth` binary on a free port with a temporary data
//! dir and a real model, creates users and tokens with the real CLI, and talks HTTP.

#![allow(dead_code)]

pub mod gguf_fixtures;
pub mod tls;

use serde_json::Value;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_hearth");

pub fn model_in_cache(file: &str, env_var: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env_var) {
        return PathBuf::from(path);
    }
    let cache = std::env::var_os("HEARTH_MODEL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/hearth/models"));
    let path = cache.join(file);
    assert!(
        path.is_file(),
        "test model {} is missing: run `python3 models/fetch.py test default` first",
        path.display()
    );
    path
}

/// SmolLM2-135M: fast, for tests about plumbing.
pub fn small_model() -> PathBuf {
    model_in_cache("SmolLM2-135M-Instruct.Q4_1.gguf", "HEARTH_TEST_SMALL_MODEL")
}

/// The default chat model, for tests about answers.
pub fn default_model() -> PathBuf {
    model_in_cache("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "HEARTH_TEST_DEFAULT_MODEL")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Runs the CLI against a data dir; returns (exit code, stdout, stderr).
pub fn cli(data_dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env("HEARTH_CONFIG", "/dev/null")
        .output()
        .expect("running hearth");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Creates a user and returns a fresh token for it.
pub fn create_user(data_dir: &Path, name: &str) -> String {
    let (code, _, err) = cli(data_dir, &["users", "add", name]);
    assert_eq!(code, 0, "users add failed: {err}");
    let (code, out, err) = cli(data_dir, &["tokens", "create", "--user", name]);
    assert_eq!(code, 0, "tokens create failed: {err}");
    out.lines().last().expect("token line").trim().to_string()
}

#[derive(Clone)]
pub struct ServerOptions {
    pub model: PathBuf,
    pub context_size: u32,
    pub env: Vec<(String, String)>,
    /// The port to serve on (default: a free one).
    pub port: Option<u16>,
    /// With TLS on, the plain listener's port (default: a free one).
    pub plain_port: Option<u16>,
    /// The host name in `url`, resolved to 127.0.0.1 by `agent()` (default: 127.0.0.1).
    pub host: Option<String>,
    /// The hearth binary to run (default: the one cargo built).
    pub bin: Option<PathBuf>,
    /// `--threads` (default 1; `None`: Hearth's automatic threads, which follow the load).
    pub threads: Option<u32>,
}

impl ServerOptions {
    pub fn new(model: PathBuf) -> Self {
        Self {
            model,
            context_size: 2048,
            env: Vec::new(),
            port: None,
            plain_port: None,
            host: None,
            bin: None,
            threads: Some(1),
        }
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
}

pub struct Server {
    pub child: Child,
    /// `https://127.0.0.1:PORT` when the options turn TLS on, else `http://...`.
    pub url: String,
    /// With TLS on: the plain-HTTP listener that redirects.
    pub plain_url: Option<String>,
    pub data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    options: ServerOptions,
    started: Instant,
}

impl Server {
    /// Starts a server with a new data dir and waits until the model settled.
    pub fn start(options: ServerOptions) -> Server {
        let mut server = Server::spawn_unsettled(options);
        server.wait_settled();
        server
    }

    /// Starts a server with a new data dir without waiting for it.
    pub fn spawn_unsettled(options: ServerOptions) -> Server {
        let temp = tempfile::tempdir().unwrap();
        let mut server = Server::spawn(temp.path().to_path_buf(), options);
        server._temp = Some(temp);
        server
    }

    /// Starts a server on an existing data dir (kept after the server stops).
    pub fn start_in(data_dir: &Path, options: ServerOptions) -> Server {
        let mut server = Server::spawn(data_dir.to_path_buf(), options);
        server.wait_settled();
        server
    }

    /// Starts a server on an existing data dir and waits only until its health answers
    /// (an encrypted box waiting for its passphrase answers "locked").
    pub fn start_in_locked(data_dir: &Path, options: ServerOptions) -> Server {
        let mut server = Server::spawn(data_dir.to_path_buf(), options);
        let deadline = Instant::now() + Duration::from_secs(60);
        while server.health().is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("hearth exited early with {status}; log:\n{}", server.log());
            }
            assert!(Instant::now() < deadline, "no health answer; log:\n{}", server.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    fn spawn(data_dir: PathBuf, options: ServerOptions) -> Server {
        let port = options.port.unwrap_or_else(free_port);
        let log = std::fs::File::create(data_dir.join("server.log")).unwrap();
        // Plain HTTP unless a test turns TLS on with HEARTH_TLS_MODE.
        let tls = options.env.iter().any(|(k, v)| k == "HEARTH_TLS_MODE" && v != "off");
        let plain_port = options.plain_port.unwrap_or_else(free_port);
        let mut cmd = Command::new(options.bin.as_deref().unwrap_or(Path::new(BIN)));
        cmd.env("HEARTH_TLS_MODE", "off").env("HEARTH_HTTP_LISTEN", format!("127.0.0.1:{plain_port}"));
        cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")]);
        if let Some(threads) = options.threads {
            cmd.args(["--threads", &threads.to_string()]);
        }
        cmd.arg("--data-dir")
            .arg(&data_dir)
            .arg("--model")
            .arg(&options.model)
            .args(["--context-size", &options.context_size.to_string()])
            .env("HEARTH_CONFIG", "/dev/null")
            .env("HEARTH_LOG_LEVEL", "info,hearth=debug")
            // Tests poll as fast as machines do (every 10-100 ms, for minutes); the
            // per-user request limit is tested on its own (limits.rs).
            .env("HEARTH_REQUESTS_PER_MINUTE", "6000")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (k, v) in &options.env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("starting hearth serve");
        let scheme = if tls { "https" } else { "http" };
        let host = options.host.clone().unwrap_or_else(|| "127.0.0.1".into());
        Server {
            child,
            url: format!("{scheme}://{host}:{port}"),
            plain_url: tls.then(|| format!("http://127.0.0.1:{plain_port}")),
            data_dir,
            _temp: None,
            options,
            started: Instant::now(),
        }
    }

    /// An HTTP client for this server: with TLS on, it trusts the server's local CA
    /// (`<data_dir>/tls/ca.crt`, once made) and the test's `HEARTH_TEST_CA` file, and
    /// nothing else.
    pub fn agent(&self) -> ureq::Agent {
        if self.plain_url.is_none() {
            return ureq::agent();
        }
        let extra =
            self.options.env.iter().find(|(k, _)| k == "HEARTH_TEST_CA").map(|(_, v)| PathBuf::from(v));
        let local_ca = self.data_dir.join("tls/ca.crt");
        let files: Vec<&Path> = [Some(local_ca.as_path()), extra.as_deref()].into_iter().flatten().collect();
        let config = tls::client_config(tls::roots(&files));
        // Every name (the ACME test's domain too) is this machine.
        let resolve = |addr: &str| {
            let port = addr.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()).unwrap_or(443);
            Ok(vec![std::net::SocketAddr::from(([127, 0, 0, 1], port))])
        };
        ureq::AgentBuilder::new().tls_config(config).redirects(0).resolver(resolve).build()
    }

    /// Waits until health answers and the model is ready or failed.
    pub fn wait_settled(&mut self) -> Value {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("hearth exited early with {status}; log:\n{}", self.log());
            }
            let health = self.health();
            if let Ok(health) = &health {
                let state = health["components"]["model"]["state"].as_str().unwrap_or("");
                if state == "ready" || state == "failed" {
                    return health.clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "server did not settle; last health: {health:?}\nits threads: {}\nlog:\n{}",
                threads_of(self.child.id()),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until speech to text and text to speech are ready (a failure fails the test).
    pub fn wait_voice(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let health = self.health().unwrap();
            let states =
                ["speech_to_text", "text_to_speech"].map(|c| health["components"][c]["state"].clone());
            if states.iter().all(|s| s == "ready") {
                return;
            }
            assert!(
                !states.iter().any(|s| s == "failed"),
                "a speech engine failed: {health}\n{}",
                self.log()
            );
            assert!(Instant::now() < deadline, "speech engines did not load: {health}\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn health(&self) -> Result<Value, ureq::Error> {
        Ok(self.agent().get(&format!("{}/api/health", self.url)).call()?.into_json()?)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("server.log")).unwrap_or_default()
    }

    /// The first-run setup code, from the private file the server keeps it in (the log
    /// only says where that file is).
    pub fn setup_code(&self) -> String {
        let path = self.data_dir.join("setup-code");
        let code = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("no setup code in {}: {e}\n{}", path.display(), self.log()));
        code.trim().to_string()
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// SIGKILL, then a new server on the same data dir.
    pub fn kill_and_restart(self) -> Server {
        self.kill_and_restart_after(Duration::ZERO)
    }

    /// SIGKILL, `down` with no server, then a new one on the same data dir.
    pub fn kill_and_restart_after(mut self, down: Duration) -> Server {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        std::thread::sleep(down);
        self.restart()
    }

    /// SIGTERM, as systemd stops the service; once it has exited, a new server on the same
    /// data dir.
    pub fn stop_and_restart(mut self) -> Server {
        let pid = self.child.id().to_string();
        assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the server did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.restart()
    }

    fn restart(mut self) -> Server {
        let temp = self._temp.take();
        let mut next = Server::spawn(self.data_dir.clone(), self.options.clone());
        next._temp = temp;
        next.wait_settled();
        next
    }

    pub fn user(&self, name: &str) -> String {
        create_user(&self.data_dir, name)
    }

    /// Waits until the server holds exactly `expected` threads named `name` (an OpenMP
    /// worker takes the name of the thread that started its pool), or panics with the
    /// names it holds after 30 s. Threads that have been told to end take a moment to go.
    pub fn wait_threads_named(&self, name: &str, expected: usize) {
        let task = format!("/proc/{}/task", self.child.id());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let names: Vec<String> = std::fs::read_dir(&task)
                .unwrap()
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .map(|n| n.trim_end().to_string())
                .collect();
            if names.iter().filter(|n| *n == name).count() == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "expected {expected} threads named {name}; the server holds {names:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A request; returns the status and the body (JSON when it parses, else a string).
    pub fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> (u16, Value) {
        let mut req =
            self.agent().request(method, &format!("{}{}", self.url, path)).timeout(Duration::from_secs(600));
        if let Some(t) = token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        let result = match body {
            Some(b) => req.send_json(b.clone()),
            None => req.call(),
        };
        response_parts(result)
    }

    /// Sends raw bytes with a content type.
    pub fn raw(&self, path: &str, token: &str, content_type: &str, body: &[u8]) -> (u16, Value) {
        let result = self
            .agent()
            .post(&format!("{}{}", self.url, path))
            .set("Authorization", &format!("Bearer {token}"))
            .set("Content-Type", content_type)
            .send_bytes(body);
        response_parts(result)
    }

    /// POSTs `multipart/form-data` with one `file` field per (file name, bytes).
    pub fn upload(&self, token: &str, files: &[(&str, &[u8])]) -> (u16, Value) {
        let boundary = "hearth-test-boundary-7d1f";
        let mut body = Vec::new();
        for (name, bytes) in files {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
                     Content-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            );
            body.extend_from_slice(bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        self.raw("/api/documents", token, &format!("multipart/form-data; boundary={boundary}"), &body)
    }

    /// Polls a job until it is done or failed; returns it.
    pub fn wait_job(&self, token: &str, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let (status, job) = self.call("GET", &format!("/api/jobs/{id}"), Some(token), None);
            assert_eq!(status, 200, "{job}");
            if job["state"] == "done" || job["state"] == "failed" {
                return job;
            }
            assert!(Instant::now() < deadline, "job {id} did not end: {job}\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// POSTs JSON and returns the raw SSE body (status must be 200).
    pub fn sse(&self, path: &str, token: &str, body: &Value) -> String {
        let response = self
            .agent()
            .post(&format!("{}{}", self.url, path))
            .set("Authorization", &format!("Bearer {token}"))
            .send_json(body.clone())
            .unwrap_or_else(|e| panic!("SSE request failed: {e:?}"));
        assert!(response.content_type().starts_with("text/event-stream"), "{}", response.content_type());
        let mut text = String::new();
        response.into_reader().read_to_string(&mut text).unwrap();
        text
    }
}

pub fn response_parts(result: Result<ureq::Response, ureq::Error>) -> (u16, Value) {
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport error: {e}"),
    };
    let status = response.status();
    let text = response.into_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        record_time(self.started.elapsed());
    }
}

/// With `HEARTH_TEST_TIMES` set (scripts/test.sh sets it), appends the test's name and how
/// long its server ran, so the suite's slowest tests can be listed after a run.
fn record_time(elapsed: Duration) {
    use std::io::Write;
    let (Some(path), Some(name)) =
        (std::env::var_os("HEARTH_TEST_TIMES"), std::thread::current().name().map(String::from))
    else {
        return;
    };
    if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(file, "{name}\t{:.1}", elapsed.as_secs_f64());
    }
}

/// Parses an SSE body into (event name, data) pairs.
pub fn sse_events(body: &str) -> Vec<(String, String)> {
    let mut events = Vec::new();
    for block in body.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let mut name = String::new();
        let mut data = Vec::new();
        for line in block.lines() {
            if let Some(n) = line.strip_prefix("event: ") {
                name = n.to_string();
            } else if let Some(d) = line.strip_prefix("data: ") {
                data.push(d);
            }
        }
        events.push((name, data.join("\n")));
    }
    events
}

/// The error code of an error body.
pub fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no code>")
}

/// Runs a Python client script of `tests/clients/` with `env` and returns the JSON report it
/// prints last; fails naming the package to install (`package`) when the client fails.
/// The interpreter is `HEARTH_TEST_PYTHON` (scripts/test.sh's .venv-test), else `python3`.
pub fn python_client(script: &str, env: &[(&str, &str)], package: &str) -> Value {
    let python = std::env::var("HEARTH_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let path = format!("{}/tests/clients/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(&python)
        .arg(&path)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("running {python}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{script} failed (is {package} installed for {python}? pip install '{package}', or set \
         HEARTH_TEST_PYTHON)\n{stdout}\n{stderr}"
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// What each thread of a process is doing (name, state, kernel wait channel) and what it
/// has read from disk: for a server that does not settle, tells a stall on I/O from a hang.
fn threads_of(pid: u32) -> String {
    let read = |path: String| std::fs::read_to_string(path).unwrap_or_default().trim().to_string();
    let mut out = read(format!("/proc/{pid}/io")).replace('\n', ", ");
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return out };
    for task in tasks.flatten() {
        let dir = task.path().display().to_string();
        let state = read(format!("{dir}/stat"));
        let state = state.rsplit(')').next().unwrap_or("").split_whitespace().next().unwrap_or("?");
        out += &format!("\n  {} {state} {}", read(format!("{dir}/comm")), read(format!("{dir}/wchan")));
    }
    out
}
