//! Which addresses a webhook may connect to (server-side request forgery): loopback and private
//! networks only when the operator's `TargetPolicy` allows them; link-local, cloud metadata and
//! unspecified addresses never. The webhook client (`target::http`) runs the check on every
//! address a name resolves to (an IP literal is its own), at every new connection, and connects
//! only to what it allows.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use common::rules::TargetPolicy;

/// A connection the policy refuses.
#[derive(Debug, Clone, thiserror::Error)]
#[error("target address refused ({kind}): {addr}")]
pub struct Refused {
    /// `loopback`, `private`, `link_local`, `metadata`, `unspecified`.
    pub kind: &'static str,
    pub addr: IpAddr,
}

/// Cloud metadata services outside link-local ranges (Alibaba Cloud's, AWS's IPv6 one).
const METADATA: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
];

fn classify(ip: IpAddr) -> Option<&'static str> {
    if METADATA.contains(&ip) {
        return Some("metadata");
    }
    match ip {
        IpAddr::V4(v4) => {
            if v4.is_unspecified() || v4.is_broadcast() {
                Some("unspecified")
            } else if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_link_local() {
                Some("link_local")
            } else if v4.is_private() || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64) {
                // RFC 1918 and carrier-grade NAT (100.64.0.0/10).
                Some("private")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return classify(IpAddr::V4(v4));
            }
            let seg0 = v6.segments()[0];
            if v6.is_unspecified() {
                Some("unspecified")
            } else if v6.is_loopback() {
                Some("loopback")
            } else if seg0 & 0xffc0 == 0xfe80 {
                Some("link_local")
            } else if seg0 & 0xfe00 == 0xfc00 {
                Some("private")
            } else {
                None
            }
        }
    }
}

/// Whether the policy lets a webhook connect to `ip`.
pub fn check(ip: IpAddr, policy: TargetPolicy) -> Result<(), Refused> {
    match classify(ip) {
        None => Ok(()),
        Some("loopback") if policy.allow_loopback => Ok(()),
        Some("private") if policy.allow_private => Ok(()),
        Some(kind) => Err(Refused { kind, addr: ip }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_addresses_are_refused_unless_allowed() {
        let strict = TargetPolicy::default();
        for (addr, kind) in [
            ("127.0.0.1", "loopback"),
            ("::1", "loopback"),
            ("::ffff:127.0.0.1", "loopback"),
            ("169.254.169.254", "link_local"),
            ("fe80::1", "link_local"),
            ("100.100.100.200", "metadata"),
            ("10.1.2.3", "private"),
            ("192.168.1.1", "private"),
            ("fd12::1", "private"),
            ("0.0.0.0", "unspecified"),
        ] {
            assert_eq!(check(ip(addr), strict).unwrap_err().kind, kind, "{addr}");
        }
        assert!(check(ip("93.184.216.34"), strict).is_ok());
        let open = TargetPolicy {
            allow_loopback: true,
            allow_private: true,
        };
        assert!(check(ip("127.0.0.1"), open).is_ok());
        assert!(check(ip("10.0.0.1"), open).is_ok());
        assert!(check(ip("169.254.169.254"), open).is_err(), "metadata is never allowed");
        assert!(check(ip("100.100.100.200"), open).is_err());
    }
}
