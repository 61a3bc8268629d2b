//! Who the client is behind trusted proxies: the peer address, or the one a trusted proxy forwarded in `X-Forwarded-For`.

use std::net::IpAddr;
use std::str::FromStr;

use warp::http::HeaderMap;

/// An address block such as `10.0.0.0/8`, `127.0.0.1` or `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

impl FromStr for Network {
    type Err = String;

    fn from_str(text: &str) -> Result<Network, String> {
        let bad = || format!("{text:?} is not an address or an address/prefix");
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text.trim(), None),
        };
        let address: IpAddr = address.parse().map_err(|_| bad())?;
        let bits = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= bits)
                .ok_or_else(bad)?,
            None => bits,
        };
        Ok(Network { address, prefix })
    }
}

impl Network {
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        match (self.address, address) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                masked(u128::from(u32::from(net)) << 96, self.prefix)
                    == masked(u128::from(u32::from(a)) << 96, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                masked(u128::from(net), self.prefix) == masked(u128::from(a), self.prefix)
            }
            _ => false,
        }
    }
}

fn masked(bits: u128, prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        bits & (u128::MAX << (128 - u32::from(prefix)))
    }
}

/// IPv4 addresses arriving as IPv4-mapped IPv6 compare as IPv4.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

/// The client's address. A request from a trusted proxy is taken to be from the last address in
/// `X-Forwarded-For` that is not itself a trusted proxy (each proxy appends the address it heard
/// from; only what trusted proxies appended can be believed). From anyone else the header is
/// ignored: a client could write anything there.
pub fn client(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[Network]) -> Option<IpAddr> {
    let peer = canonical(peer?);
    if !trusted.iter().any(|n| n.contains(peer)) {
        return Some(peer);
    }
    let mut client = peer;
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    for hop in hops.iter().rev() {
        let Ok(address) = hop.trim().parse::<IpAddr>() else {
            // An entry that is no address: nothing before it can be believed either.
            break;
        };
        client = canonical(address);
        if !trusted.iter().any(|n| n.contains(client)) {
            break;
        }
    }
    Some(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> Network {
        text.parse().unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn networks_parse_and_contain() {
        assert!(net("10.0.0.0/8").contains(ip("10.200.3.4")));
        assert!(!net("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(net("127.0.0.1").contains(ip("127.0.0.1")));
        assert!(!net("127.0.0.1").contains(ip("127.0.0.2")));
        assert!(net("127.0.0.1").contains(ip("::ffff:127.0.0.1")));
        assert!(net("fd00::/8").contains(ip("fd12::1")));
        assert!(net("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(!net("::/0").contains(ip("203.0.113.9")));
        for bad in ["", "10.0.0.0/33", "x/8", "10.0.0.0/", "::1/129"] {
            assert!(bad.parse::<Network>().is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_addresses_count_only_behind_trusted_proxies() {
        let trusted = [net("127.0.0.1"), net("10.0.0.0/8")];
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "6.6.6.6, 198.51.100.7, 10.1.1.1".parse().unwrap(),
        );
        // From the proxy: the last untrusted hop. What came before it may be made up.
        assert_eq!(
            client(Some(ip("127.0.0.1")), &headers, &trusted),
            Some(ip("198.51.100.7"))
        );
        // From anyone else the header says nothing.
        assert_eq!(
            client(Some(ip("203.0.113.5")), &headers, &trusted),
            Some(ip("203.0.113.5"))
        );
        assert_eq!(
            client(Some(ip("127.0.0.1")), &headers, &[]),
            Some(ip("127.0.0.1"))
        );
        // A proxy that forwarded nothing, or garbage: the proxy itself, or the last good hop.
        let empty = HeaderMap::new();
        assert_eq!(
            client(Some(ip("127.0.0.1")), &empty, &trusted),
            Some(ip("127.0.0.1"))
        );
        headers.insert("x-forwarded-for", "junk, 198.51.100.9".parse().unwrap());
        assert_eq!(
            client(Some(ip("10.0.0.2")), &headers, &trusted),
            Some(ip("198.51.100.9"))
        );
        headers.insert("x-forwarded-for", "198.51.100.9, junk".parse().unwrap());
        assert_eq!(
            client(Some(ip("10.0.0.2")), &headers, &trusted),
            Some(ip("10.0.0.2"))
        );
    }
}
