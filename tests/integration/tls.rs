//! HTTPS as the box serves it: the local CA (every name and address, TLS 1.2 and 1.3
//! only, re-issued when the addresses change), the plain listener's redirect, the `Host`
//! check, `Secure` cookies, and `files` mode reloading without dropping connections.
//! Certificates are checked by real TLS clients: `openssl s_client` and rustls.

use crate::common::tls::{connect, new_ec_key, roots, TlsStream};
use crate::common::{code, small_model, Server, ServerOptions};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn local_server(extra: &[(&str, &str)]) -> Server {
    let mut options = ServerOptions::new(small_model()).env("HEARTH_TLS_MODE", "local");
    for (k, v) in extra {
        options = options.env(k, v);
    }
    Server::start(options)
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

/// `openssl s_client` against the server, checking the chain against `ca` and the name
/// (`-verify_hostname`, or `-verify_ip` for an address). Returns (success, output).
fn s_client(port: u16, ca: &Path, name: &str, extra: &[&str]) -> (bool, String) {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &format!("127.0.0.1:{port}"), "-verify_return_error", "-brief"])
        .arg("-CAfile")
        .arg(ca)
        .args(extra);
    if name.parse::<std::net::IpAddr>().is_ok() {
        cmd.args(["-verify_ip", name]);
    } else {
        cmd.args(["-servername", name, "-verify_hostname", name]);
    }
    let out =
        cmd.stdin(std::process::Stdio::null()).output().expect("openssl runs (apt-get install openssl)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// A plain-HTTP request without following redirects: (status, Location).
fn plain(url: &str, method: &str) -> (u16, Option<String>) {
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    let response = match agent.request(method, url).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport error: {e}"),
    };
    (response.status(), response.header("Location").map(str::to_string))
}

/// One keep-alive `GET /api/health` on an open connection; returns the status.
fn get_health(stream: &mut TlsStream) -> u16 {
    stream.write_all(b"GET /api/health HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).expect("a response on the kept connection");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap())
        })
        .expect("content-length");
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    head[9..12].parse().unwrap()
}

fn names_of(der: &[u8]) -> Vec<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    let san = cert.subject_alternative_name().unwrap().expect("subject alternative names");
    san.value
        .general_names
        .iter()
        .map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) => d.to_string(),
            x509_parser::extensions::GeneralName::IPAddress(b) if b.len() == 4 => {
                std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string()
            }
            other => format!("{other:?}"),
        })
        .collect()
}

fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

#[test]
fn local_ca_certifies_every_name_over_tls_1_2_and_1_3_only() {
    let server = local_server(&[("HEARTH_ALLOWED_HOSTS", "10.99.0.7,assistant.home.arpa")]);
    let port = port_of(&server.url);
    let plain_url = server.plain_url.clone().unwrap();
    let ca = server.data_dir.join("tls/ca.crt");

    // The CA's certificate comes over plain HTTP without login, as PEM and DER.
    let response = ureq::get(&format!("{plain_url}/ca.crt")).call().unwrap();
    assert_eq!(response.content_type(), "application/x-x509-ca-cert");
    let header = response.header("X-Hearth-CA-Fingerprint").unwrap().to_string();
    let pem = response.into_string().unwrap();
    assert_eq!(pem, std::fs::read_to_string(&ca).unwrap());
    let mut der = Vec::new();
    ureq::get(&format!("{plain_url}/ca.der")).call().unwrap().into_reader().read_to_end(&mut der).unwrap();
    assert_eq!(fingerprint(&der), header);
    let key_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(server.data_dir.join("tls/ca.key")).unwrap().permissions(),
    );
    assert_eq!(key_mode & 0o777, 0o600);

    // Health, over HTTPS with the CA trusted, says what is served.
    let health = server.health().unwrap();
    let tls = &health["components"]["tls"];
    assert_eq!(tls["mode"], "local", "{health}");
    assert_eq!(tls["ca_fingerprint"], Value::String(header.clone()));
    assert!(tls["expires_in_days"].as_u64().unwrap() >= 170, "{tls}");
    assert!(tls["last_error"].is_null(), "{tls}");
    // The console says it too, for checking before trusting, and so does `hearth onboard`.
    assert!(server.log().contains(&header), "the fingerprint is not in the log");
    let (status, _, err) = crate::common::cli(&server.data_dir, &["onboard"]);
    assert_eq!(status, 0, "{err}");
    assert!(err.contains(&header), "hearth onboard does not show the fingerprint: {err}");

    // Every advertised name and address verifies with a real client, and a foreign one fails.
    for name in ["localhost", "hearth.local", "assistant.home.arpa", "127.0.0.1", "10.99.0.7"] {
        let (ok, out) = s_client(port, &ca, name, &[]);
        assert!(ok, "{name} does not verify:\n{out}");
    }
    let (ok, out) = s_client(port, &ca, "bank.example.com", &[]);
    assert!(!ok, "a foreign name verified:\n{out}");

    // TLS 1.2 and 1.3 are served; 1.1 is refused by the server (the client is told to allow it).
    assert!(s_client(port, &ca, "localhost", &["-tls1_3"]).0);
    assert!(s_client(port, &ca, "localhost", &["-tls1_2"]).0);
    let (ok, out) = s_client(port, &ca, "localhost", &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"]);
    assert!(!ok, "TLS 1.1 was accepted:\n{out}");
    // The refusal is the server's: an alert came back (rustls answers handshake_failure).
    assert!(out.contains("alert handshake failure") || out.contains("alert protocol version"), "{out}");

    // The plain listener only redirects (keeping the method), except for the CA and health.
    let (status, location) = plain(&format!("{plain_url}/api/conversations?limit=1"), "GET");
    assert_eq!(status, 307);
    assert_eq!(
        location.as_deref(),
        Some(format!("https://127.0.0.1:{port}/api/conversations?limit=1").as_str())
    );
    assert_eq!(plain(&format!("{plain_url}/"), "GET").0, 307, "the web UI only over HTTPS");
    assert_eq!(plain(&format!("{plain_url}/api/health"), "GET").0, 200);
    let (status, location) = plain(&format!("{plain_url}/api/login"), "POST");
    assert_eq!((status, location.is_some()), (307, true));

    // DNS rebinding: a foreign Host is refused, on both listeners; no HSTS with the local CA.
    let refused =
        server.agent().get(&format!("{}/api/health", server.url)).set("Host", "evil.example.com").call();
    let Err(ureq::Error::Status(421, response)) = refused else { panic!("foreign Host served: {refused:?}") };
    let body: Value = response.into_json().unwrap();
    assert_eq!(code(&body), "unknown_host");
    let refused = ureq::get(&format!("{plain_url}/ca.crt")).set("Host", "evil.example.com:8080").call();
    assert!(matches!(refused, Err(ureq::Error::Status(421, _))), "{refused:?}");
    let ok = server.agent().get(&format!("{}/api/health", server.url)).set("Host", "Hearth.Local:443").call();
    let ok = ok.unwrap();
    assert!(ok.header("Strict-Transport-Security").is_none());

    // Logins over HTTPS get a Secure cookie.
    let (_, out, _) = crate::common::cli(&server.data_dir, &["onboard"]);
    let setup = out.lines().last().unwrap().trim().to_string();
    let response = server
        .agent()
        .post(&format!("{}/api/onboard", server.url))
        .set("X-Hearth-CSRF", "1")
        .send_json(json!({"code": setup, "name": "root", "password": "correct horse battery"}))
        .unwrap();
    let cookie = response.header("Set-Cookie").unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
    let onboard: Value =
        server.agent().get(&format!("{}/api/onboard", server.url)).call().unwrap().into_json().unwrap();
    assert_eq!(onboard["ca_fingerprint"], Value::String(header));
}

#[test]
fn a_new_address_gets_a_new_certificate_from_the_same_ca() {
    let data = tempfile::tempdir().unwrap();
    let options = ServerOptions::new(small_model()).env("HEARTH_TLS_MODE", "local");
    let server = Server::start_in(data.path(), options.clone());
    let ca = server.data_dir.join("tls/ca.crt");
    let before = std::fs::read(&ca).unwrap();
    let (_, first) = connect(port_of(&server.url), "localhost", roots(&[&ca]));
    assert!(!names_of(&first).contains(&"10.98.0.3".to_string()));
    drop(server);
    let server = Server::start_in(data.path(), options.env("HEARTH_ALLOWED_HOSTS", "10.98.0.3"));
    assert_eq!(std::fs::read(&ca).unwrap(), before, "the CA stays: devices that trust it keep trusting");
    let (_, second) = connect(port_of(&server.url), "localhost", roots(&[&ca]));
    assert_ne!(first, second, "a new certificate");
    assert!(names_of(&second).contains(&"10.98.0.3".to_string()), "{:?}", names_of(&second));
    let (ok, out) = s_client(port_of(&server.url), &ca, "10.98.0.3", &[]);
    assert!(ok, "{out}");
}

/// A CA and a certificate for localhost made with the openssl CLI, as an owner would.
struct OwnPki {
    dir: tempfile::TempDir,
}

impl OwnPki {
    fn new() -> OwnPki {
        let dir = tempfile::tempdir().unwrap();
        let pki = OwnPki { dir };
        let mut args = vec!["req", "-x509"];
        args.extend(new_ec_key("ca.key"));
        args.extend(["-out", "ca.crt", "-subj", "/CN=Own test CA", "-days", "2"]);
        pki.openssl(&args);
        std::fs::write(pki.path("san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn openssl(&self, args: &[&str]) {
        crate::common::tls::openssl(self.dir.path(), args);
    }

    /// Issues a new key and certificate and puts them at `cert.pem`/`key.pem` the way
    /// certbot does: written aside, then renamed into place.
    fn issue(&self, n: u32) {
        let (key, csr, leaf) = (format!("k{n}.pem"), format!("r{n}.csr"), format!("l{n}.pem"));
        let mut args = vec!["req"];
        args.extend(new_ec_key(&key));
        args.extend(["-out", &csr, "-subj", "/CN=localhost"]);
        self.openssl(&args);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-set_serial",
            &(1000 + n).to_string(),
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            &leaf,
        ]);
        let chain = std::fs::read_to_string(self.path(&leaf)).unwrap()
            + &std::fs::read_to_string(self.path("ca.crt")).unwrap();
        std::fs::write(self.path("cert.new"), chain).unwrap();
        std::fs::copy(self.path(&key), self.path("key.new")).unwrap();
        std::fs::rename(self.path("key.new"), self.path("key.pem")).unwrap();
        std::fs::rename(self.path("cert.new"), self.path("cert.pem")).unwrap();
    }
}

#[test]
fn files_mode_reloads_new_files_without_dropping_connections() {
    let pki = OwnPki::new();
    pki.issue(1);
    let ca = pki.path("ca.crt");
    let server = Server::start(
        ServerOptions::new(small_model())
            .env("HEARTH_TLS_MODE", "files")
            .env("HEARTH_TLS_CERT", pki.path("cert.pem").to_str().unwrap())
            .env("HEARTH_TLS_KEY", pki.path("key.pem").to_str().unwrap())
            .env("HEARTH_TEST_CA", ca.to_str().unwrap()),
    );
    let port = port_of(&server.url);
    let (mut kept, first) = connect(port, "localhost", roots(&[&ca]));
    assert_eq!(get_health(&mut kept), 200);
    // HSTS: a certificate the owner provides is trusted by browsers on its own.
    let response = server.agent().get(&format!("{}/api/health", server.url)).call().unwrap();
    assert_eq!(response.header("Strict-Transport-Security"), Some("max-age=31536000"));
    assert!(
        server.agent().get(&format!("{}/ca.crt", server.url)).call().is_err(),
        "no local CA in files mode"
    );

    pki.issue(2);
    let deadline = Instant::now() + Duration::from_secs(30);
    let second = loop {
        let (_, cert) = connect(port, "localhost", roots(&[&ca]));
        if cert != first {
            break cert;
        }
        assert!(Instant::now() < deadline, "the new certificate was never served:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(200));
    };
    let (_, cert) = x509_parser::parse_x509_certificate(&second).unwrap();
    assert_eq!(cert.raw_serial(), [0x03, 0xea], "serial 1002: the second pair");
    // The connection opened before the reload still works.
    assert_eq!(get_health(&mut kept), 200);

    // A broken pair is refused and the served certificate stays.
    std::fs::write(pki.path("key.pem"), "-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n")
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let health = server.health().unwrap();
        if !health["components"]["tls"]["last_error"].is_null() {
            break;
        }
        assert!(Instant::now() < deadline, "the broken key was not reported: {health}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, still) = connect(port, "localhost", roots(&[&ca]));
    assert_eq!(still, second);
}

#[test]
fn files_mode_with_missing_files_fails_to_start_and_says_why() {
    let out = Command::new(crate::common::BIN)
        .args(["serve", "--tls", "files", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(tempfile::tempdir().unwrap().path())
        .env("HEARTH_CONFIG", "/dev/null")
        .env("HEARTH_TLS_CERT", "/nonexistent/cert.pem")
        .env("HEARTH_TLS_KEY", "/nonexistent/key.pem")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/cert.pem"), "{err}");
}

#[test]
fn the_cli_on_the_box_chats_over_https_trusting_its_own_ca() {
    let server = local_server(&[]);
    let token = server.user("alice");
    let url = server.url.replace("127.0.0.1", "localhost");
    let chat = |data_dir: &Path| {
        Command::new(crate::common::BIN)
            .args(["chat", "Say hello.", "--url", &url, "--data-dir"])
            .arg(data_dir)
            .env("HEARTH_TOKEN", &token)
            .env("HEARTH_CONFIG", "/dev/null")
            .output()
            .unwrap()
    };
    let out = chat(&server.data_dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stdout).trim().is_empty());
    // Elsewhere (another data dir, no CA) the certificate is refused, and the error says why.
    let other = tempfile::tempdir().unwrap();
    let out = chat(other.path());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("certificate") && err.contains("ca.crt"), "{err}");
}
