//! CIDR networks (`10.0.0.0/8`, `::1/128`) and whether a peer address belongs to one.
//!
//! Used for `[auth] trusted_proxies`: only peers inside these networks may assert a tenant in a
//! header. A network written with host bits set is refused rather than silently widened or
//! narrowed, because a typo here decides whom the proxy believes.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IPv4 or IPv6 network: an address whose host bits are zero and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `10.0.0.0/8`, `::1/128` or a bare address (`127.0.0.1` means `/32`, `::1` `/128`).
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address
            .parse()
            .map_err(|_| format!("\"{text}\" is not an IP address or network"))?;
        let max = max_prefix(network);
        let prefix = match prefix {
            None => max,
            Some(p) => {
                let valid = !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit());
                match p.parse::<u8>() {
                    Ok(n) if valid && n <= max => n,
                    _ => {
                        return Err(format!(
                            "invalid prefix length in \"{text}\": expected 0 to {max}"
                        ))
                    }
                }
            }
        };
        let canonical = Cidr {
            network: masked(network, prefix),
            prefix,
        };
        if canonical.network != network {
            return Err(format!(
                "\"{text}\" has host bits set; the network is {canonical}"
            ));
        }
        Ok(canonical)
    }

    /// The network address (host bits zero).
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length, 0 to 32 for IPv4 and 0 to 128 for IPv6.
    pub fn prefix_len(&self) -> u8 {
        self.prefix
    }

    /// True when `ip` is inside the network.
    ///
    /// A dual-stack listener reports IPv4 peers as IPv4-mapped IPv6 addresses
    /// (`::ffff:10.1.2.3`), so those match IPv4 networks, and plain IPv4 peers match networks
    /// written in the mapped form.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.network, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            (IpAddr::V6(_), IpAddr::V4(v4)) => IpAddr::V6(v4.to_ipv6_mapped()),
            _ => ip,
        };
        masked(ip, self.prefix) == self.network
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

fn max_prefix(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// The address with every bit after the first `prefix` cleared.
fn masked(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_parse(text: &str, expected: Result<&str, &str>) {
        let got = Cidr::parse(text).map(|c| c.to_string());
        assert_eq!(
            got.as_deref().map_err(String::as_str),
            expected,
            "parsing {text}"
        );
    }

    fn check(network: &str, ip: &str, expected: bool) {
        let cidr = Cidr::parse(network).expect("test network parses");
        let ip: IpAddr = ip.parse().expect("test address parses");
        assert_eq!(cidr.contains(ip), expected, "{network} contains {ip}");
    }

    #[test]
    fn networks_parse_to_canonical_form() {
        check_parse("10.0.0.0/8", Ok("10.0.0.0/8"));
        check_parse("192.168.1.0/24", Ok("192.168.1.0/24"));
        check_parse("0.0.0.0/0", Ok("0.0.0.0/0"));
        check_parse("::1/128", Ok("::1/128"));
        check_parse("fd00::/8", Ok("fd00::/8"));
        check_parse("::/0", Ok("::/0"));
    }

    #[test]
    fn bare_address_is_one_host() {
        check_parse("127.0.0.1", Ok("127.0.0.1/32"));
        check_parse("::1", Ok("::1/128"));
    }

    #[test]
    fn host_bits_set_is_refused_naming_the_network() {
        check_parse(
            "10.1.2.3/8",
            Err("\"10.1.2.3/8\" has host bits set; the network is 10.0.0.0/8"),
        );
        check_parse(
            "fd00::1/64",
            Err("\"fd00::1/64\" has host bits set; the network is fd00::/64"),
        );
    }

    #[test]
    fn bad_prefix_is_refused() {
        let v4 = |t: &str| format!("invalid prefix length in \"{t}\": expected 0 to 32");
        for text in [
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/ 8",
            "10.0.0.0/0008",
            "10.0.0.0/8/8",
        ] {
            check_parse(text, Err(&v4(text)));
        }
        check_parse(
            "::/129",
            Err("invalid prefix length in \"::/129\": expected 0 to 128"),
        );
    }

    #[test]
    fn non_address_is_refused() {
        for text in ["", "localhost", "10.0.0/8", "10.0.0.0.0/8", "[::1]/128"] {
            check_parse(
                text,
                Err(&format!("\"{text}\" is not an IP address or network")),
            );
        }
    }

    #[test]
    fn ipv4_membership() {
        check("10.0.0.0/8", "10.255.1.2", true);
        check("10.0.0.0/8", "11.0.0.1", false);
        check("127.0.0.1/32", "127.0.0.1", true);
        check("127.0.0.1/32", "127.0.0.2", false);
        check("0.0.0.0/0", "203.0.113.9", true);
        check("192.168.1.128/25", "192.168.1.127", false);
        check("192.168.1.128/25", "192.168.1.200", true);
    }

    #[test]
    fn ipv6_membership() {
        check("::1/128", "::1", true);
        check("::1/128", "::2", false);
        check("fd00::/8", "fd12:3456::1", true);
        check("fd00::/8", "fe80::1", false);
        check("::/0", "2001:db8::1", true);
    }

    #[test]
    fn ipv4_mapped_peer_matches_ipv4_network() {
        check("10.0.0.0/8", "::ffff:10.1.2.3", true);
        check("10.0.0.0/8", "::ffff:11.1.2.3", false);
        check("127.0.0.1", "::ffff:127.0.0.1", true);
    }

    #[test]
    fn families_do_not_mix_otherwise() {
        check("10.0.0.0/8", "::1", false);
        check("0.0.0.0/0", "2001:db8::1", false);
        check("::1/128", "127.0.0.1", false);
        // A plain IPv4 peer matches a network written in the mapped form.
        check("::ffff:10.0.0.0/104", "10.9.8.7", true);
    }
}
