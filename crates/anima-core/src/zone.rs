//! Network zones: what a server administrator lets agent sandboxes reach,
//! as `host:port` patterns. A work item is granted zones by name; its
//! sandboxes reach the zones' hosts through the provider's egress proxy
//! and nothing else.
//!
//! A pattern's host is a name (`pypi.org`), every name under a domain
//! (`*.pythonhosted.org`), an address (`10.1.2.3`, `[fd00::1]`) or a range
//! (`10.0.0.0/8`, `[fd00::/8]`); its port is a number or `*`. Only
//! addresses and ranges name internal addresses: a name that resolves to
//! loopback, a private or link-local range or a metadata address is not
//! reached through a zone unless an address pattern (or the zone's fixed
//! `connect_to`) names that address.

use std::net::IpAddr;

/// One allowed `host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    host: Host,
    /// `None`: any port.
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    /// One name, lower-case.
    Name(String),
    /// Every name under this domain (`.example.com`).
    Under(String),
    /// Addresses in this range (a single address has the full length).
    Range(IpAddr, u8),
}

impl Pattern {
    /// Parses `host:port`; the message says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("{text:?} is not a host:port pattern: {why}");
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, port) = rest.split_once("]:").ok_or_else(|| bad("[address]:port"))?;
            (host, port)
        } else {
            text.rsplit_once(':').ok_or_else(|| bad("no port"))?
        };
        let port = match port {
            "*" => None,
            port => Some(
                port.parse::<u16>()
                    .ok()
                    .filter(|port| *port > 0)
                    .ok_or_else(|| bad("the port is 1-65535 or *"))?,
            ),
        };
        let host = if let Some((address, bits)) = host.split_once('/') {
            let address: IpAddr = address
                .parse()
                .map_err(|_| bad("a range is ADDRESS/BITS"))?;
            let bits: u8 = bits
                .parse()
                .ok()
                .filter(|bits| *bits <= max_bits(address))
                .ok_or_else(|| bad("the range's length is too long"))?;
            range(address, bits).ok_or_else(|| bad("an IPv4-mapped range is at least /96"))?
        } else if let Ok(address) = host.parse::<IpAddr>() {
            Host::Range(canonical(address), max_bits(canonical(address)))
        } else {
            let (under, name) = match host.strip_prefix("*.") {
                Some(name) => (true, name),
                None => (false, host),
            };
            let name = name.to_ascii_lowercase();
            if !is_name(&name) {
                return Err(bad("the host is a name, *.domain, an address or a range"));
            }
            if under {
                Host::Under(format!(".{name}"))
            } else {
                Host::Name(name)
            }
        };
        Ok(Self { host, port })
    }

    fn port_allows(&self, port: u16) -> bool {
        self.port.is_none_or(|allowed| allowed == port)
    }

    /// Whether this pattern lets a sandbox ask for the name `host` at
    /// `port` (its addresses are checked separately).
    pub fn allows_name(&self, host: &str, port: u16) -> bool {
        let host = host.to_ascii_lowercase();
        self.port_allows(port)
            && match &self.host {
                Host::Name(name) => *name == host,
                Host::Under(suffix) => host.ends_with(suffix.as_str()),
                Host::Range(..) => false,
            }
    }

    /// Whether this pattern names `address` at `port` itself (an address
    /// or a range): the only way an internal address is reached.
    pub fn names_address(&self, address: IpAddr, port: u16) -> bool {
        let Host::Range(network, bits) = self.host else {
            return false;
        };
        self.port_allows(port) && in_range(canonical(address), canonical(network), bits)
    }
}

/// A range in canonical form: an IPv4-mapped IPv6 range is the IPv4
/// range it maps (so its length counts IPv4 bits).
fn range(address: IpAddr, bits: u8) -> Option<Host> {
    match (address, canonical(address)) {
        (IpAddr::V6(_), IpAddr::V4(v4)) => Some(Host::Range(IpAddr::V4(v4), bits.checked_sub(96)?)),
        (_, address) => Some(Host::Range(address, bits)),
    }
}

fn max_bits(address: IpAddr) -> u8 {
    if address.is_ipv4() { 32 } else { 128 }
}

/// An IPv4 address written as IPv6 (`::ffff:a.b.c.d`) is that IPv4
/// address.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

fn in_range(address: IpAddr, network: IpAddr, bits: u8) -> bool {
    let (address, network, width): (u128, u128, u32) = match (address, network) {
        (IpAddr::V4(a), IpAddr::V4(n)) => (u128::from(u32::from(a)), u128::from(u32::from(n)), 32),
        (IpAddr::V6(a), IpAddr::V6(n)) => (u128::from(a), u128::from(n), 128),
        _ => return false,
    };
    let Some(shift) = width.checked_sub(u32::from(bits)) else {
        return false;
    };
    if shift >= 128 {
        return true;
    }
    (address >> shift) == (network >> shift)
}

/// A DNS name: labels of letters, digits and `-`, separated by dots.
fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Whether `address` is one a zone's name must never lead to unless the
/// zone names the address: loopback, unspecified, private, shared
/// (carrier-grade NAT), link-local (cloud metadata lives there), unique
/// local, multicast or broadcast.
pub fn is_internal(address: IpAddr) -> bool {
    match canonical(address) {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            v4.is_loopback()
                || v4.is_unspecified()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (b == 18 || b == 19))
        }
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            let first = segments[0];
            // IPv4 inside IPv6 (NAT64, 6to4, the old compatible form):
            // what matters is the IPv4 address it leads to.
            let embedded = |high: u16, low: u16| {
                let [h1, h2] = high.to_be_bytes();
                let [l1, l2] = low.to_be_bytes();
                IpAddr::from([h1, h2, l1, l2])
            };
            let nat64 =
                segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || segments[..3] == [0x64, 0xff9b, 1];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first & 0xffc0) == 0xfec0
                || segments[..6] == [0; 6]
                || (nat64 && is_internal(embedded(segments[6], segments[7])))
                || (first == 0x2002 && is_internal(embedded(segments[1], segments[2])))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> Pattern {
        Pattern::parse(text).unwrap_or_else(|err| panic!("{err}"))
    }

    #[test]
    fn names_domains_addresses_and_ranges() {
        assert!(pattern("PyPI.org:443").allows_name("pypi.org", 443));
        assert!(!pattern("pypi.org:443").allows_name("pypi.org", 80));
        assert!(!pattern("pypi.org:443").allows_name("evilpypi.org", 443));
        assert!(pattern("*.pythonhosted.org:*").allows_name("files.pythonhosted.org", 8443));
        assert!(!pattern("*.pythonhosted.org:*").allows_name("pythonhosted.org", 443));
        assert!(pattern("10.0.0.0/8:5432").names_address("10.9.8.7".parse().expect("ip"), 5432));
        assert!(!pattern("10.0.0.0/8:5432").names_address("11.0.0.1".parse().expect("ip"), 5432));
        assert!(pattern("[fd00::/8]:443").names_address("fd12::1".parse().expect("ip"), 443));
        assert!(
            pattern("127.0.0.1:5432").names_address("::ffff:127.0.0.1".parse().expect("ip"), 5432)
        );
        assert!(!pattern("127.0.0.1:5432").allows_name("localhost", 5432));
        // A mapped range counts IPv4 bits, and never matches everything.
        let mapped = pattern("[::ffff:10.0.0.0/104]:5432");
        assert!(mapped.names_address("10.1.2.3".parse().expect("ip"), 5432));
        assert!(!mapped.names_address("127.0.0.1".parse().expect("ip"), 5432));
        assert!(Pattern::parse("[::ffff:10.0.0.0/64]:1").is_err());
        for bad in [
            "pypi.org",
            "pypi.org:0",
            "pypi.org:99999",
            "a b:1",
            "10.0.0.0/33:1",
            "[::1:1",
            "-x.org:1",
            "*:*",
        ] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn internal_addresses_are_known() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "::1",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "::",
            "192.0.0.8",
            "198.18.0.1",
            "240.0.0.1",
            "64:ff9b::a00:5",
            "64:ff9b:1::a00:5",
            "2002:a00:5::1",
            "::10.0.0.5",
        ] {
            assert!(is_internal(internal.parse().expect("ip")), "{internal}");
        }
        for public in [
            "151.101.0.223",
            "2a04:4e42::223",
            "8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(!is_internal(public.parse().expect("ip")), "{public}");
        }
    }
}
