//! The administrators' address allowlist (`[server] admin_allow`): CIDR blocks such as
//! `10.0.0.0/8` or `::1/128` (a bare address is one host). Empty: any address.
//!
//! The address judged is the TCP peer's. Forwarding headers (`X-Forwarded-For`,
//! `Forwarded`) are never trusted: anyone can send them. Behind a reverse proxy every
//! request comes from the proxy's address, so list the proxy only if it does its own
//! checks.

use std::net::IpAddr;

/// One block of addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `address/prefix` or a bare address; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let network: IpAddr = address
            .parse()
            .map_err(|_| format!("'{text}' is not an address or a CIDR block such as 10.0.0.0/8"))?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(p) => match p.parse::<u8>() {
                Ok(p) if p <= bits => p,
                _ => return Err(format!("'{text}': the prefix length must be 0-{bits}")),
            },
        };
        Ok(Cidr { network, prefix })
    }

    /// Whether `ip` is in the block; an IPv4 address seen as IPv6 (`::ffff:a.b.c.d`) is
    /// judged as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Parses every entry; the first bad one is the error.
pub fn parse_all(entries: &[String]) -> Result<Vec<Cidr>, String> {
    entries.iter().map(|e| Cidr::parse(e)).collect()
}

/// Whether an administrator at `ip` may use the admin routes: any address when the list
/// is empty; none when the address is unknown and the list is not.
pub fn allows(list: &[Cidr], ip: Option<IpAddr>) -> bool {
    list.is_empty() || ip.is_some_and(|ip| list.iter().any(|c| c.contains(ip)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> Vec<Cidr> {
        parse_all(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn blocks_contain_their_addresses_only() {
        let l = list(&["10.0.0.0/8", "192.168.1.7", "::1/128", "fd00::/8"]);
        for yes in ["10.1.2.3", "192.168.1.7", "::1", "fd12::1", "::ffff:10.9.9.9"] {
            assert!(allows(&l, Some(yes.parse().unwrap())), "{yes}");
        }
        for no in ["11.0.0.1", "192.168.1.8", "127.0.0.1", "fe80::1", "::2"] {
            assert!(!allows(&l, Some(no.parse().unwrap())), "{no}");
        }
        assert!(!allows(&l, None));
        assert!(allows(&[], None), "empty: any");
        assert!(allows(&list(&["0.0.0.0/0"]), Some("8.8.8.8".parse().unwrap())));
    }

    #[test]
    fn bad_entries_say_why() {
        assert!(Cidr::parse("10.0.0.0/33").unwrap_err().contains("0-32"));
        assert!(Cidr::parse("::/129").unwrap_err().contains("0-128"));
        assert!(Cidr::parse("lan").unwrap_err().contains("not an address"));
        assert!(Cidr::parse("10.0.0.0/x").is_err());
    }
}
