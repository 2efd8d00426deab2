//! The box found on the LAN: mDNS answers for `<server.name>.local` and a DNS-SD service
//! (`_https._tcp`, or `_http._tcp` with TLS off) named "Hearth on <host>", so phones and
//! computers reach it as `https://hearth.local:<port>/` without knowing its address.
//! mdns-sd runs its own thread and follows address changes itself. `server.mdns = false`
//! turns it off (for example where avahi already advertises the box).

use crate::config::Settings;

/// The running advertisement; dropping it withdraws it (a goodbye packet).
pub struct Advertisement {
    daemon: mdns_sd::ServiceDaemon,
    fullname: String,
}

/// Starts advertising, or says why not (never fatal: the box works by address).
pub fn advertise(settings: &Settings) -> Option<Advertisement> {
    // A server only this box can reach has nothing to advertise (and development and
    // test servers on loopback send nothing onto the LAN).
    if !settings.server.mdns || settings.listen_addr().ip().is_loopback() {
        return None;
    }
    let kind = if settings.tls.enabled() { "_https._tcp.local." } else { "_http._tcp.local." };
    let host = format!("{}.local.", settings.server.name.to_ascii_lowercase());
    let box_name = super::names::host_name().unwrap_or_else(|| settings.server.name.clone());
    let instance = format!("Hearth on {box_name}");
    let port = settings.listen_addr().port();
    let started = mdns_sd::ServiceDaemon::new().and_then(|daemon| {
        let info = mdns_sd::ServiceInfo::new(kind, &instance, &host, "", port, [("path", "/")].as_slice())?
            .enable_addr_auto();
        let fullname = info.get_fullname().to_string();
        daemon.register(info)?;
        Ok(Advertisement { daemon, fullname })
    });
    match started {
        Ok(ad) => {
            tracing::info!(host = %host.trim_end_matches('.'), service = %ad.fullname, port, "advertising on the LAN (mDNS)");
            Some(ad)
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot advertise the box by mDNS; it is still reachable by address");
            None
        }
    }
}

impl Drop for Advertisement {
    fn drop(&mut self) {
        let _ = self.daemon.unregister(&self.fullname);
        let _ = self.daemon.shutdown();
    }
}
