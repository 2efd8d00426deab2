//! Issue 24: the governor. The real readers read temperatures and memory from files the
//! test writes (`[governor] thermal_dir`, `meminfo_path`); the server steps down to
//! shedding (503 with Retry-After, model loads refused, health and admin reads answered)
//! and back up, each change published over MQTT at once (a real mosquitto, the state's
//! interval an hour). Then a real memory cgroup: Hearth counts its limit and refuses a second
//! model that would not fit, and stays under the limit.

use crate::common::{cli, code, default_model, small_model, Server, ServerOptions, BIN};
use crate::mqtt::{Broker, Subscriber};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// An administrator's token (`/api/system` is theirs to read).
fn admin(server: &Server) -> String {
    let (status, _, err) = cli(&server.data_dir, &["users", "add", "root", "--admin"]);
    assert_eq!(status, 0, "{err}");
    let (status, out, err) = cli(&server.data_dir, &["tokens", "create", "--user", "root"]);
    assert_eq!(status, 0, "{err}");
    out.lines().last().unwrap().trim().to_string()
}

/// A thermal zone directory and a meminfo file the test controls.
struct FakeBoard {
    dir: tempfile::TempDir,
}

impl FakeBoard {
    fn new() -> FakeBoard {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("thermal/thermal_zone0")).unwrap();
        std::fs::write(dir.path().join("thermal/thermal_zone0/type"), "cpu-thermal\n").unwrap();
        let board = FakeBoard { dir };
        board.temperature(45.0);
        board.memory_available_mb(6000);
        board
    }

    fn thermal_dir(&self) -> PathBuf {
        self.dir.path().join("thermal")
    }

    fn meminfo(&self) -> PathBuf {
        self.dir.path().join("meminfo")
    }

    /// Written whole and renamed, so the server never reads half a file.
    fn write(&self, path: &Path, text: &str) {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(tmp, path).unwrap();
    }

    fn temperature(&self, celsius: f64) {
        let millidegrees = format!("{}\n", (celsius * 1000.0) as i64);
        self.write(&self.thermal_dir().join("thermal_zone0/temp"), &millidegrees);
    }

    fn memory_available_mb(&self, mb: u64) {
        let text = format!(
            "MemTotal:        8192000 kB\nMemFree:          {} kB\nMemAvailable:     {} kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n",
            mb * 1024 / 2,
            mb * 1024
        );
        self.write(&self.meminfo(), &text);
    }
}

fn governor(server: &Server, token: &str) -> Value {
    let (status, system) = server.call("GET", "/api/system", Some(token), None);
    assert_eq!(status, 200, "{system}");
    system["governor"].clone()
}

fn wait_level(server: &Server, token: &str, level: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let g = governor(server, token);
        if g["level"] == level {
            return g;
        }
        assert!(Instant::now() < deadline, "the governor never reached {level}: {g}\n{}", server.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A chat request with its status, the `Retry-After` header and the body.
fn chat(server: &Server, token: &str, body: &Value) -> (u16, Option<String>, Value) {
    let result = server
        .agent()
        .post(&format!("{}/api/chat", server.url))
        .set("Authorization", &format!("Bearer {token}"))
        .timeout(Duration::from_secs(300))
        .send_json(body.clone());
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("chat request failed: {e}"),
    };
    let status = response.status();
    let retry_after = response.header("Retry-After").map(str::to_string);
    (status, retry_after, response.into_json().unwrap_or(Value::Null))
}

fn metric(server: &Server, token: &str, name: &str) -> f64 {
    let (status, text) = server.call("GET", "/metrics", Some(token), None);
    assert_eq!(status, 200);
    let text = text.as_str().unwrap_or_default().to_string();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

#[test]
fn the_governor_steps_down_sheds_and_recovers_on_injected_readings() {
    assert!(default_model().is_file(), "a second model to ask for");
    let board = FakeBoard::new();
    let config = board.dir.path().join("hearth.toml");
    std::fs::write(
        &config,
        "[governor]\nsample_interval_ms = 200\nrecover_samples = 3\nretry_after_secs = 9\n\
         min_memory_available_mb = 300\nmax_temperature_c = 80.0\n",
    )
    .unwrap();
    let broker = Broker::start(false);
    let subscriber = Subscriber::start(&broker);
    let options = ServerOptions::new(small_model())
        .env("HEARTH_CONFIG", config.to_str().unwrap())
        .env("HEARTH_GOVERNOR_THERMAL_DIR", board.thermal_dir().to_str().unwrap())
        .env("HEARTH_GOVERNOR_MEMINFO_PATH", board.meminfo().to_str().unwrap());
    // State every hour: what arrives sooner comes from the connection and the changes.
    let mut server = Server::start(broker.hearth(options, 3600));
    let token = admin(&server);
    let ask = json!({"message": "Say hi.", "max_tokens": 4, "temperature": 0});
    let published = |server: &Server, level: &str| {
        let topic = "hearth/testbox/state";
        subscriber.wait(server, topic, &format!("a state at {level}"), |m| {
            m.iter().any(|m| m.json()["governor_level"] == level)
        });
    };

    let g = wait_level(&server, &token, "normal");
    published(&server, "normal");
    assert_eq!(g["enabled"], true, "{g}");
    let (status, _, reply) = chat(&server, &token, &ask);
    assert_eq!(status, 200, "{reply}");
    let (_, system) = server.call("GET", "/api/system", Some(&token), None);
    assert_eq!(system["system"]["temperature_celsius"], 45.0, "the fake zone is read: {system}");

    // Hot: one level per sample, down to shedding.
    board.temperature(92.5);
    let g = wait_level(&server, &token, "shedding");
    assert_eq!(g["level_number"], 3, "{g}");
    assert!(g["reason"].as_str().unwrap().contains("92.5"), "the reading that caused it: {g}");
    let (status, retry_after, err) = chat(&server, &token, &ask);
    assert_eq!((status, code(&err)), (503, "shedding_load"), "{err}");
    assert_eq!(retry_after.as_deref(), Some("9"), "Retry-After from governor.retry_after_secs");
    // A second model is not loaded meanwhile.
    let other = json!({"message": "hi", "max_tokens": 4, "model": "qwen2.5-coder-0.5b-instruct"});
    let (status, retry_after, err) = chat(&server, &token, &other);
    assert_eq!((status, code(&err)), (503, "model_loads_paused"), "{err}");
    assert!(retry_after.is_some());
    // OpenAI's route sheds the same way; health and admin reads are never shed.
    let (status, err) = server.call(
        "POST",
        "/v1/chat/completions",
        Some(&token),
        Some(&json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})),
    );
    assert_eq!((status, code(&err)), (503, "shedding_load"), "{err}");
    assert!(server.health().is_ok());
    assert_eq!(metric(&server, &token, "hearth_governor_level"), 3.0);
    assert!(server.alive());
    published(&server, "shedding");

    // Cool again: back up one level at a time, and chats are answered.
    board.temperature(50.0);
    wait_level(&server, &token, "normal");
    let (status, _, reply) = chat(&server, &token, &ask);
    assert_eq!(status, 200, "{reply}");
    assert_eq!(metric(&server, &token, "hearth_governor_changes_total"), 6.0);

    // Short of memory: the same, read from meminfo.
    board.memory_available_mb(100);
    let g = wait_level(&server, &token, "shedding");
    assert!(g["reason"].as_str().unwrap().contains("memory available 100 MiB"), "{g}");
    let (status, _, err) = chat(&server, &token, &ask);
    assert_eq!((status, code(&err)), (503, "shedding_load"), "{err}");
    board.memory_available_mb(4000);
    wait_level(&server, &token, "normal");
    let (status, _, reply) = chat(&server, &token, &ask);
    assert_eq!(status, 200, "{reply}");

    let log = server.log();
    assert!(log.contains("governor steps down") && log.contains("governor steps up"), "{log}");
    assert!(server.alive(), "no crash");
}

/// A fresh cgroup v1 memory cgroup with a limit, removed when dropped.
struct MemoryCgroup {
    dir: PathBuf,
}

impl MemoryCgroup {
    fn new(limit: u64) -> MemoryCgroup {
        let root = Path::new("/sys/fs/cgroup/memory");
        assert!(
            root.join("cgroup.procs").is_file(),
            "this test needs cgroup v1's memory controller at {} (as root); this machine has none",
            root.display()
        );
        let dir = root.join(format!("hearth-test-{}", std::process::id()));
        let _ = std::fs::remove_dir(&dir);
        std::fs::create_dir(&dir).unwrap_or_else(|e| {
            panic!("cannot create the memory cgroup {}: {e} (the test must run as root)", dir.display())
        });
        std::fs::write(dir.join("memory.limit_in_bytes"), limit.to_string())
            .unwrap_or_else(|e| panic!("cannot set the cgroup's memory limit: {e}"));
        MemoryCgroup { dir }
    }

    fn read(&self, file: &str) -> u64 {
        std::fs::read_to_string(self.dir.join(file)).unwrap().trim().parse().unwrap()
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[test]
fn a_real_memory_cgroup_limit_refuses_a_second_model_and_hearth_stays_under_it() {
    assert!(default_model().is_file(), "the second model to ask for");
    const LIMIT: u64 = 512 << 20;
    let cgroup = MemoryCgroup::new(LIMIT);
    // The server joins the cgroup before it execs hearth, so every page it touches counts.
    let scripts = tempfile::tempdir().unwrap();
    let wrapper = scripts.path().join("in-cgroup.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho $$ > '{}/cgroup.procs' || exit 97\nexec '{BIN}' \"$@\"\n",
            cgroup.dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut options = ServerOptions::new(small_model()).env("HEARTH_PARALLEL", "1");
    options.bin = Some(wrapper);
    let mut server = Server::start(options);
    let token = admin(&server);

    let (_, system) = server.call("GET", "/api/system", Some(&token), None);
    assert_eq!(system["system"]["memory_limit_bytes"], LIMIT, "Hearth read its cgroup's limit: {system}");
    assert!(system["system"]["memory_total_bytes"].as_u64().unwrap() <= LIMIT, "{system}");
    let (status, reply) =
        server.call("POST", "/api/chat", Some(&token), Some(&json!({"message": "hi", "max_tokens": 4})));
    assert_eq!(status, 200, "the first model fits: {reply}");

    let body = json!({"message": "hi", "max_tokens": 4, "model": "qwen2.5-coder-0.5b-instruct"});
    let (status, err) = server.call("POST", "/api/chat", Some(&token), Some(&body));
    assert_eq!((status, code(&err)), (503, "insufficient_memory"), "{err}");
    assert!(server.alive(), "still running:\n{}", server.log());
    let (status, reply) =
        server.call("POST", "/api/chat", Some(&token), Some(&json!({"message": "hi", "max_tokens": 4})));
    assert_eq!(status, 200, "the first model still answers: {reply}");
    let peak = cgroup.read("memory.max_usage_in_bytes");
    assert!(peak < LIMIT, "peak {} MiB under the {} MiB limit", peak >> 20, LIMIT >> 20);
    assert_eq!(cgroup.read("memory.failcnt"), 0, "the limit was never hit");
}

#[test]
fn generation_threads_give_up_a_core_while_another_process_is_busy() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    let mut options = ServerOptions::new(small_model()).env("HEARTH_GOVERNOR_SAMPLE_INTERVAL_MS", "200");
    options.threads = None; // automatic: they follow the load
    let mut server = Server::start(options);
    let token = admin(&server);
    // A busy neighbour: a shell spinning on one core.
    let mut busy = std::process::Command::new("sh").args(["-c", "while :; do :; done"]).spawn().unwrap();
    let expected = cores.min(8).saturating_sub(1).max(1);
    let deadline = Instant::now() + Duration::from_secs(60);
    let ask = json!({"message": "Say hi.", "max_tokens": 4, "temperature": 0});
    loop {
        // The threads change between decodes: a request makes one.
        let (status, _, reply) = chat(&server, &token, &ask);
        assert_eq!(status, 200, "{reply}");
        let used = metric(&server, &token, "hearth_generation_threads") as u32;
        let chosen = governor(&server, &token)["generation_threads"].as_u64();
        if used == expected && chosen == Some(u64::from(expected)) {
            break;
        }
        if Instant::now() > deadline {
            let _ = busy.kill();
            panic!("generation kept {used} threads (governor: {chosen:?}), {expected} expected beside a busy process");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = busy.kill();
    let _ = busy.wait();
    assert!(server.alive());
}
