//! `[tls] mode = "acme"` against a real ACME CA: Debian's `pebble` (Let's Encrypt's test
//! server) and `pebble-challtestsrv` (its DNS, answering 127.0.0.1 for every name), both
//! started here on free loopback ports. Hearth gets a certificate for a test domain by
//! TLS-ALPN-01 on its own listener, serves it (checked against pebble's root), renews it
//! when it is short-lived, and reports an unreachable directory on `/api/health`.

use crate::common::{small_model, Server, ServerOptions};
use serde_json::Value;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn need(tool: &str) {
    let found =
        Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().unwrap().status.success();
    assert!(found, "{tool} is missing: apt-get install pebble (scripts/deps.sh installs it)");
}

/// pebble and its DNS server, stopped when dropped.
struct Pebble {
    dir: tempfile::TempDir,
    children: Vec<Child>,
    directory: String,
    management: u16,
}

impl Pebble {
    /// `tls_port`, `http_port`: where pebble's validator connects for TLS-ALPN-01 and
    /// HTTP-01 challenges (Hearth's listeners). `validity`: seconds each certificate is valid.
    fn start(tls_port: u16, http_port: u16, validity: u64) -> Pebble {
        need("pebble");
        need("pebble-challtestsrv");
        let dir = tempfile::tempdir().unwrap();
        // pebble's own listener certificate (the package ships none).
        crate::common::tls::self_signed_localhost(dir.path());
        let (api, management, dns, dns_management) = (free_port(), free_port(), free_port(), free_port());
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{api}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": dir.path().join("cert.pem"),
            "privateKey": dir.path().join("key.pem"),
            // Where pebble's validator connects for the challenges: Hearth's listener.
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
            "certificateValidityPeriod": validity,
        }});
        std::fs::write(dir.path().join("pebble.json"), config.to_string()).unwrap();
        let log = |name: &str| std::fs::File::create(dir.path().join(name)).unwrap();
        let dns_server = Command::new("pebble-challtestsrv")
            .args(["-dns01", &format!("127.0.0.1:{dns}"), "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{dns_management}")])
            .stdout(log("challtestsrv.log"))
            .stderr(log("challtestsrv.err"))
            .spawn()
            .unwrap();
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(dir.path().join("pebble.json"))
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            // rustls-acme does not retry badNonce answers.
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdin(Stdio::null())
            .stdout(log("pebble.log"))
            .stderr(log("pebble.err"))
            .spawn()
            .unwrap();
        let mut started = Pebble {
            dir,
            children: vec![dns_server, pebble],
            directory: format!("https://127.0.0.1:{api}/dir"),
            management,
        };
        started.wait_up();
        started
    }

    fn listener_ca(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    fn agent(&self) -> ureq::Agent {
        let config = crate::common::tls::client_config(crate::common::tls::roots(&[&self.listener_ca()]));
        ureq::AgentBuilder::new().tls_config(config).build()
    }

    fn wait_up(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.agent().get(&self.directory).call().is_err() {
            for child in &mut self.children {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("pebble exited with {status}: {}", self.logs());
                }
            }
            assert!(Instant::now() < deadline, "pebble did not start: {}", self.logs());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The root pebble issues under (made anew at each start): what clients trust.
    fn write_root(&self) -> PathBuf {
        let url = format!("https://127.0.0.1:{}/roots/0", self.management);
        let pem = self.agent().get(&url).call().unwrap().into_string().unwrap();
        let path = self.dir.path().join("root.pem");
        std::fs::write(&path, pem).unwrap();
        path
    }

    fn logs(&self) -> String {
        ["pebble.log", "pebble.err", "challtestsrv.err"]
            .map(|f| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default())
            .join("\n")
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn served_certificate(port: u16, name: &str, root: &Path) -> Vec<u8> {
    crate::common::tls::connect(port, name, crate::common::tls::roots(&[root])).1.to_vec()
}

#[test]
fn acme_certificate_is_issued_served_and_renewed() {
    let port = free_port();
    // Short-lived certificates: rustls-acme renews at two thirds of their life.
    let pebble = Pebble::start(port, free_port(), 30);
    let root = pebble.write_root();
    let domain = "hearth.test";
    let mut options = ServerOptions::new(small_model())
        .env("HEARTH_TLS_MODE", "acme")
        .env("HEARTH_ACME_DOMAINS", domain)
        .env("HEARTH_ACME_CONTACT", "admin@hearth.test")
        .env("HEARTH_ACME_DIRECTORY", &pebble.directory)
        .env("HEARTH_ACME_CA", pebble.listener_ca().to_str().unwrap())
        .env("HEARTH_TEST_CA", root.to_str().unwrap());
    options.port = Some(port);
    options.host = Some(domain.into());
    let server = Server::start(options);

    let health = server.health().unwrap_or_else(|e| panic!("{e}\n{}\n{}", server.log(), pebble.logs()));
    let tls = &health["components"]["tls"];
    assert_eq!(tls["mode"], "acme", "{health}");
    assert!(tls["last_error"].is_null(), "{tls}");
    assert_eq!(tls["names"], serde_json::json!([domain]));
    let first = served_certificate(port, domain, &root);
    let (_, cert) = x509_parser::parse_x509_certificate(&first).unwrap();
    assert!(cert.issuer().to_string().to_lowercase().contains("pebble"), "{}", cert.issuer());
    // The account key and certificate are cached privately.
    for entry in std::fs::read_dir(server.data_dir.join("acme")).unwrap() {
        let mode = std::os::unix::fs::PermissionsExt::mode(&entry.unwrap().metadata().unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
    }

    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let now = served_certificate(port, domain, &root);
        if now != first {
            break;
        }
        assert!(Instant::now() < deadline, "not renewed:\n{}\n{}", server.log(), pebble.logs());
        std::thread::sleep(Duration::from_millis(500));
    }
    let health = server.health().unwrap();
    assert!(health["components"]["tls"]["last_error"].is_null(), "{health}");
}

#[test]
fn acme_http_01_is_answered_on_the_plain_listener() {
    let (port, plain_port) = (free_port(), free_port());
    let pebble = Pebble::start(free_port(), plain_port, 3600);
    let root = pebble.write_root();
    let domain = "hearth-http.test";
    let mut options = ServerOptions::new(small_model())
        .env("HEARTH_TLS_MODE", "acme")
        .env("HEARTH_ACME_DOMAINS", domain)
        .env("HEARTH_ACME_CHALLENGE", "http-01")
        .env("HEARTH_ACME_DIRECTORY", &pebble.directory)
        .env("HEARTH_ACME_CA", pebble.listener_ca().to_str().unwrap())
        .env("HEARTH_TEST_CA", root.to_str().unwrap());
    options.port = Some(port);
    options.plain_port = Some(plain_port);
    options.host = Some(domain.into());
    let server = Server::start(options);
    let health = server.health().unwrap_or_else(|e| panic!("{e}\n{}\n{}", server.log(), pebble.logs()));
    assert_eq!(health["components"]["tls"]["names"], serde_json::json!([domain]), "{health}");
    let der = served_certificate(port, domain, &root);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert!(cert.issuer().to_string().to_lowercase().contains("pebble"));
    // The validator fetched the answer from the plain listener.
    assert!(pebble.logs().contains("Attempting to validate w/ HTTP"), "{}", pebble.logs());
}

#[test]
fn an_unreachable_acme_directory_is_reported_on_health() {
    let closed = free_port();
    let mut options = ServerOptions::new(small_model())
        .env("HEARTH_TLS_MODE", "acme")
        .env("HEARTH_ACME_DOMAINS", "hearth.test")
        .env("HEARTH_ACME_DIRECTORY", &format!("https://127.0.0.1:{closed}/dir"));
    options.port = Some(free_port());
    // No certificate can come: health over the plain listener says why.
    let server = crate::common::Server::spawn_unsettled(options);
    let plain = server.plain_url.clone().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let health: Option<Value> =
            ureq::get(&format!("{plain}/api/health")).call().ok().and_then(|r| r.into_json().ok());
        if let Some(error) = health.as_ref().and_then(|h| h["components"]["tls"]["last_error"].as_str()) {
            assert!(!error.is_empty());
            assert_eq!(health.as_ref().unwrap()["components"]["tls"]["mode"], "acme");
            break;
        }
        assert!(Instant::now() < deadline, "no ACME error reported: {health:?}\n{}", server.log());
        std::thread::sleep(Duration::from_millis(250));
    }
}
