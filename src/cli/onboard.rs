//! First-run onboarding: until an administrator has a password, `hearth serve` makes a
//! one-time setup code at startup and writes it to `<data_dir>/setup-code` (mode 0600),
//! and `hearth onboard` (on the box) prints a fresh one. Only the newest code works. The
//! log says where the file is but never carries the code: logs are kept, shipped and
//! shared far more widely than a private file in the data directory (issue 25).

use crate::auth::session::{new_setup_code, remove_setup_code_file, setup_code_hash, SETUP_CODE_SECS};
use crate::config::Settings;
use crate::store::Store;
use crate::tls::Tls;
use anyhow::Context;

/// The address to open in a browser: `https://<name>.local:<port>/`, or plain HTTP.
pub fn web_address(settings: &Settings) -> String {
    let listen = settings.listen_addr();
    let (scheme, default_port) = if settings.tls.enabled() { ("https", 443) } else { ("http", 80) };
    let port = if listen.port() == default_port { String::new() } else { format!(":{}", listen.port()) };
    format!("{scheme}://{}{port}/", box_host(settings, listen.ip()))
}

/// Where a device fetches the local CA's certificate: over the plain listener when there
/// is one (the device does not trust the HTTPS certificate yet), else over HTTPS.
pub fn ca_address(settings: &Settings) -> String {
    match settings.http_listen_addr() {
        Some(plain) => {
            let port = if plain.port() == 80 { String::new() } else { format!(":{}", plain.port()) };
            format!("http://{}{port}/ca.crt", box_host(settings, plain.ip()))
        }
        None => format!("{}ca.crt", web_address(settings)),
    }
}

/// The name a device on the LAN reaches the box by.
fn box_host(settings: &Settings, listen: std::net::IpAddr) -> String {
    if listen.is_loopback() {
        listen.to_string()
    } else if settings.server.mdns {
        format!("{}.local", settings.server.name.to_ascii_lowercase())
    } else {
        crate::tls::names::host_name().unwrap_or_else(|| "<this box's address>".into())
    }
}

/// Called by `hearth serve`: how to reach the box, and the local CA's fingerprint to
/// check before trusting it (on the console and in the log).
pub fn announce_tls(settings: &Settings, tls: Option<&Tls>) {
    let address = web_address(settings);
    match tls.and_then(|t| t.ca.as_ref()) {
        Some(ca) => tracing::info!(
            "web UI at {address} - Hearth's own certificate authority signs its certificate: install \
             {} on each phone or computer once, after checking that its SHA-256 fingerprint is \
             {}",
            ca_address(settings),
            ca.fingerprint
        ),
        None => tracing::info!("web UI at {address}"),
    }
}

/// The local CA's fingerprint from the data dir, for `hearth onboard` (which does not
/// start the server): `None` until `hearth serve` has made the CA.
fn ca_fingerprint(settings: &Settings) -> Option<String> {
    let pem = std::fs::read(settings.tls_dir().join("ca.crt")).ok()?;
    let certs = crate::tls::pem::certificates(&pem, &settings.tls_dir()).ok()?;
    Some(crate::tls::pem::fingerprint(&certs[0]))
}

/// Makes a new setup code, the only valid one from now on, and keeps it in the
/// private setup-code file (replaced atomically, so a reader sees the old code or the new).
fn issue_setup_code(store: &Store, settings: &Settings) -> anyhow::Result<String> {
    let code = new_setup_code();
    // The database first: a file whose code is not yet valid would mislead whoever reads it.
    store.replace_setup_code(&setup_code_hash(&code), SETUP_CODE_SECS)?;
    let path = settings.setup_code_path();
    crate::private_files::write_private(&path, format!("{code}\n").as_bytes())
        .with_context(|| format!("cannot write the setup code to {}", path.display()))?;
    Ok(code)
}

/// Called by `hearth serve`: while onboarding is still open, issues a new setup code
/// and logs where to find it; otherwise removes a leftover setup-code file.
pub fn announce_if_needed(store: &Store, settings: &Settings) -> anyhow::Result<()> {
    if !store.needs_onboarding()? {
        remove_setup_code_file(&settings.setup_code_path());
        return Ok(());
    }
    issue_setup_code(store, settings)?;
    let (address, file, hours) =
        (web_address(settings), settings.setup_code_path().display().to_string(), SETUP_CODE_SECS / 3600);
    tracing::warn!(
        "first-run setup: open {address} in a browser and create the administrator with the setup code in \
         {file} (read it on the box: sudo cat {file}; or run `hearth onboard` there for a new one; valid \
         {hours} hours)"
    );
    Ok(())
}

/// `hearth onboard`: prints a fresh setup code (alone on the last line of stdout); any
/// earlier code, the one in the file included, stops working.
pub fn run(settings: &Settings) -> anyhow::Result<()> {
    let dir = &settings.storage.data_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let store = super::unlock::open_store(settings)?;
    if !store.needs_onboarding()? {
        anyhow::bail!(
            "this box is already set up: an administrator has a password. Log in to the web UI, or \
             create accounts with `hearth users add`"
        );
    }
    let code = issue_setup_code(&store, settings)?;
    eprintln!(
        "Open the web UI ({}) and enter this setup code to create the administrator.",
        web_address(settings)
    );
    eprintln!(
        "It is valid for {} hours and works once; earlier codes no longer work. It is also in {}.",
        SETUP_CODE_SECS / 3600,
        settings.setup_code_path().display()
    );
    if settings.tls.mode == crate::config::TlsMode::Local {
        match ca_fingerprint(settings) {
            Some(fp) => eprintln!(
                "The box's certificate authority ({}) must have this SHA-256 fingerprint:\n  {fp}",
                ca_address(settings)
            ),
            None => eprintln!("The box's certificate authority is made when `hearth serve` first starts."),
        }
    }
    println!("{code}");
    Ok(())
}

#[cfg(test)]
mod address_tests {
    use super::{ca_address, web_address};
    use crate::config::{Settings, TlsMode};

    #[test]
    fn devices_are_sent_to_the_box_by_its_lan_name() {
        let mut s = Settings::default();
        s.server.listen = "0.0.0.0:8443".into();
        s.server.http_listen = "0.0.0.0:8080".into();
        assert_eq!(web_address(&s), "https://hearth.local:8443/");
        assert_eq!(
            ca_address(&s),
            "http://hearth.local:8080/ca.crt",
            "the CA over plain HTTP: not trusted yet"
        );
        s.server.listen = "0.0.0.0:443".into();
        s.server.http_listen = String::new();
        assert_eq!(ca_address(&s), "https://hearth.local/ca.crt");
        s.server.listen = "127.0.0.1:8443".into();
        assert_eq!(web_address(&s), "https://127.0.0.1:8443/");
        s.tls.mode = TlsMode::Off;
        s.server.listen = "0.0.0.0:80".into();
        assert_eq!(web_address(&s), "http://hearth.local/");
    }
}
