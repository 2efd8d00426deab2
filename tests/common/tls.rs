//! TLS clients for the tests: rustls trusting only the given PEM roots, and a handshake
//! that returns the certificate the server presented.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Every certificate in the PEM files that exist among `files`.
pub fn roots(files: &[&Path]) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for file in files {
        let Ok(certs) = CertificateDer::pem_file_iter(file) else { continue };
        for cert in certs {
            roots.add(cert.unwrap()).unwrap();
        }
    }
    roots
}

/// A client configuration on ring that trusts `roots` only.
pub fn client_config(roots: rustls::RootCertStore) -> Arc<rustls::ClientConfig> {
    Arc::new(
        rustls::ClientConfig::builder_with_provider(rustls::crypto::ring::default_provider().into())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

pub type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A verified TLS connection to 127.0.0.1:`port` for `name`, and the server's certificate.
pub fn connect(port: u16, name: &str, roots: rustls::RootCertStore) -> (TlsStream, CertificateDer<'static>) {
    let server_name = ServerName::try_from(name.to_string()).unwrap();
    let conn = rustls::ClientConnection::new(client_config(roots), server_name).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock).expect("TLS handshake");
    }
    let cert = stream.conn.peer_certificates().unwrap()[0].clone().into_owned();
    (stream, cert)
}

/// Runs the openssl CLI in `dir`; a failure fails the test with openssl's words.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs (apt-get install openssl)");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The arguments that make a new P-256 key with `openssl req`, written to `key`.
pub fn new_ec_key(key: &str) -> [&str; 7] {
    ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key]
}

/// A self-signed certificate for localhost and 127.0.0.1 that is not a CA (rustls
/// refuses a CA certificate as a server's), made in `dir` as `cert.pem` and `key.pem`.
pub fn self_signed_localhost(dir: &Path) {
    let mut args = vec!["req", "-x509"];
    args.extend(new_ec_key("key.pem"));
    args.extend([
        "-out",
        "cert.pem",
        "-subj",
        "/CN=localhost",
        "-days",
        "2",
        "-addext",
        "subjectAltName=DNS:localhost,IP:127.0.0.1",
        "-addext",
        "basicConstraints=critical,CA:FALSE",
        "-addext",
        "extendedKeyUsage=serverAuth",
    ]);
    openssl(dir, &args);
}
