//! What kind of address a destination is, and whether a skill may reach it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The kinds of address the guard tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// On the internet.
    Public,
    /// A LAN's: 10/8, 172.16/12, 192.168/16, 100.64/10 (carrier NAT), fc00::/7, fec0::/10.
    Private,
    /// This box: 127/8, ::1.
    Loopback,
    /// The link's: 169.254/16, fe80::/10.
    LinkLocal,
    /// A cloud's instance metadata service (169.254.169.254, fd00:ec2::254): never reached.
    Metadata,
    /// 0.0.0.0/8, ::: never reached (it means this box on some systems).
    Unspecified,
    /// 224/4, ff00::/8, 255.255.255.255: never reached.
    Multicast,
    /// 240/4 and other ranges that are no destination: never reached.
    Reserved,
}

impl Class {
    /// Refused whatever the configuration says.
    pub fn never(self) -> bool {
        matches!(self, Class::Metadata | Class::Unspecified | Class::Multicast | Class::Reserved)
    }

    /// Reachable only by an explicit opt-in (`allow_local`, Home Assistant's own address).
    pub fn local(self) -> bool {
        matches!(self, Class::Loopback | Class::LinkLocal | Class::Private)
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Class::Public => "a public address",
            Class::Private => "a private (LAN) address",
            Class::Loopback => "a loopback address",
            Class::LinkLocal => "a link-local address",
            Class::Metadata => "a cloud metadata address",
            Class::Unspecified => "an unspecified address",
            Class::Multicast => "a multicast or broadcast address",
            Class::Reserved => "a reserved address",
        })
    }
}

/// The class of an address. IPv6 forms that carry an IPv4 address (mapped `::ffff:a.b.c.d`,
/// compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are judged by the IPv4
/// address they carry, so `::ffff:127.0.0.1` is loopback.
pub fn classify(ip: IpAddr) -> Class {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Class {
    let [a, b, c, d] = ip.octets();
    match (a, b) {
        _ if ip == Ipv4Addr::new(169, 254, 169, 254) => Class::Metadata,
        (0, _) => Class::Unspecified,
        (127, _) => Class::Loopback,
        (169, 254) => Class::LinkLocal,
        (10, _) | (192, 168) => Class::Private,
        (172, 16..=31) => Class::Private,
        (100, 64..=127) => Class::Private,
        // 192.0.0.0/24: IETF protocol assignments (NAT64 discovery, DS-Lite), not hosts.
        (192, 0) if c == 0 => Class::Reserved,
        (224..=239, _) => Class::Multicast,
        _ if (a, b, c, d) == (255, 255, 255, 255) => Class::Multicast,
        (240..=255, _) => Class::Reserved,
        _ => Class::Public,
    }
}

fn classify_v6(ip: Ipv6Addr) -> Class {
    let s = ip.segments();
    if ip.is_unspecified() {
        return Class::Unspecified;
    }
    if ip.is_loopback() {
        return Class::Loopback;
    }
    if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        return Class::Metadata;
    }
    // An IPv4 address carried inside: mapped (::ffff:0:0/96), compatible (::/96), NAT64.
    if let Some(v4) = embedded_v4(&s) {
        return classify_v4(v4);
    }
    match s[0] {
        0xfe80..=0xfebf => Class::LinkLocal,
        0xfec0..=0xfeff => Class::Private,
        0xfc00..=0xfdff => Class::Private,
        0xff00..=0xffff => Class::Multicast,
        // 6to4: the IPv4 address is in the next 32 bits.
        0x2002 => classify_v4(Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8)),
        _ => Class::Public,
    }
}

fn embedded_v4(s: &[u16; 8]) -> Option<Ipv4Addr> {
    let tail = || Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0, 0, _, _] => Some(tail()),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(tail()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(text: &str) -> Class {
        classify(text.parse().unwrap())
    }

    #[test]
    fn addresses_are_classified() {
        for (address, expected) in [
            ("127.0.0.1", Class::Loopback),
            ("127.255.0.9", Class::Loopback),
            ("::1", Class::Loopback),
            ("169.254.169.254", Class::Metadata),
            ("fd00:ec2::254", Class::Metadata),
            ("169.254.10.1", Class::LinkLocal),
            ("fe80::1", Class::LinkLocal),
            ("febf::1", Class::LinkLocal),
            ("0.0.0.0", Class::Unspecified),
            ("0.1.2.3", Class::Unspecified),
            ("::", Class::Unspecified),
            ("224.0.0.1", Class::Multicast),
            ("255.255.255.255", Class::Multicast),
            ("ff02::1", Class::Multicast),
            ("240.0.0.1", Class::Reserved),
            ("10.1.2.3", Class::Private),
            ("172.16.0.1", Class::Private),
            ("172.31.255.255", Class::Private),
            ("192.168.1.10", Class::Private),
            ("100.64.0.1", Class::Private),
            ("fd12:3456::1", Class::Private),
            ("fc00::1", Class::Private),
            ("8.8.8.8", Class::Public),
            ("172.32.0.1", Class::Public),
            ("100.128.0.1", Class::Public),
            ("2606:4700::1111", Class::Public),
        ] {
            assert_eq!(class(address), expected, "{address}");
        }
    }

    #[test]
    fn ipv6_forms_of_ipv4_addresses_are_judged_by_the_ipv4_address() {
        for (address, expected) in [
            ("::ffff:127.0.0.1", Class::Loopback),
            ("::ffff:7f00:1", Class::Loopback),
            ("::ffff:169.254.169.254", Class::Metadata),
            ("::ffff:10.0.0.1", Class::Private),
            ("::ffff:0.0.0.0", Class::Unspecified),
            ("::127.0.0.1", Class::Loopback),
            ("64:ff9b::a9fe:a9fe", Class::Metadata),
            ("2002:7f00:1::", Class::Loopback),
            ("::ffff:8.8.8.8", Class::Public),
        ] {
            assert_eq!(class(address), expected, "{address}");
        }
    }

    #[test]
    fn what_is_never_reached_and_what_an_opt_in_allows() {
        assert!(Class::Metadata.never() && Class::Unspecified.never() && Class::Multicast.never());
        assert!(!Class::Loopback.never() && Class::Loopback.local());
        assert!(Class::Private.local() && Class::LinkLocal.local());
        assert!(!Class::Public.local() && !Class::Public.never());
        assert_eq!(class("127.0.0.1").to_string(), "a loopback address");
    }
}
