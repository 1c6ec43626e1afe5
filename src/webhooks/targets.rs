//! Where a webhook may be delivered: the classifier of non-public addresses (loopback, private,
//! link-local, shared, reserved, multicast, documentation, and IPv6 forms that embed such an IPv4
//! address), the check of a hook URL's literal host, and the resolver that resolves a hook's host
//! name at delivery time and hands the HTTP client exactly the addresses it checked, so that a
//! name re-pointed between the check and the connection (DNS rebinding) cannot slip through.

use std::error::Error;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// Whether `address` is anything but a public unicast address: deliveries to it are refused
/// unless `webhooks.allow_private_targets` is on.
pub fn is_private_address(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(address) => is_private_ipv4(address),
        IpAddr::V6(address) => is_private_ipv6(address),
    }
}

/// Whether `address` lies in `network/prefix_length`.
fn in_ipv4_network(address: Ipv4Addr, network: [u8; 4], prefix_length: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix_length).unwrap_or(0);
    u32::from(address) & mask == u32::from(Ipv4Addr::from(network)) & mask
}

/// The IPv4 ranges that are not public unicast (RFC 6890's special-purpose registry, with
/// multicast and the reserved 240/4, which holds the limited broadcast address).
const PRIVATE_IPV4_NETWORKS: &[([u8; 4], u32)] = &[
    ([0, 0, 0, 0], 8),       // "this network"; connecting to 0.0.0.0 reaches this host
    ([10, 0, 0, 0], 8),      // private
    ([100, 64, 0, 0], 10),   // shared address space (carrier-grade NAT)
    ([127, 0, 0, 0], 8),     // loopback
    ([169, 254, 0, 0], 16),  // link-local (cloud metadata services live here)
    ([172, 16, 0, 0], 12),   // private
    ([192, 0, 0, 0], 24),    // IETF protocol assignments
    ([192, 0, 2, 0], 24),    // documentation (TEST-NET-1)
    ([192, 88, 99, 0], 24),  // 6to4 relay anycast
    ([192, 168, 0, 0], 16),  // private
    ([198, 18, 0, 0], 15),   // benchmarking
    ([198, 51, 100, 0], 24), // documentation (TEST-NET-2)
    ([203, 0, 113, 0], 24),  // documentation (TEST-NET-3)
    ([224, 0, 0, 0], 4),     // multicast
    ([240, 0, 0, 0], 4),     // reserved, and 255.255.255.255 (broadcast)
];

fn is_private_ipv4(address: Ipv4Addr) -> bool {
    PRIVATE_IPV4_NETWORKS
        .iter()
        .any(|(network, prefix_length)| in_ipv4_network(address, *network, *prefix_length))
}

/// Whether `address` lies in `network/prefix_length`.
fn in_ipv6_network(address: Ipv6Addr, network: Ipv6Addr, prefix_length: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - prefix_length).unwrap_or(0);
    u128::from(address) & mask == u128::from(network) & mask
}

/// The IPv4 address in bits `from_bit..from_bit + 32` (counted from the most significant) of
/// `address`.
fn embedded_ipv4(address: Ipv6Addr, from_bit: u32) -> Ipv4Addr {
    let bits = u128::from(address) >> (96 - from_bit);
    // The mask keeps 32 bits, so the conversion cannot fail.
    Ipv4Addr::from(u32::try_from(bits & u128::from(u32::MAX)).unwrap_or(u32::MAX))
}

/// The IPv6 ranges that are never a public target on their own.
fn is_private_ipv6_network(address: Ipv6Addr) -> bool {
    let networks: [(Ipv6Addr, u32); 10] = [
        (Ipv6Addr::new(0x0064, 0xff9b, 1, 0, 0, 0, 0, 0), 48), // local-use NAT64
        (Ipv6Addr::new(0x0100, 0, 0, 0, 0, 0, 0, 0), 64),      // discard-only
        (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 32), // Teredo: tunnels to any IPv4 address
        (Ipv6Addr::new(0x2001, 0x0002, 0, 0, 0, 0, 0, 0), 48), // benchmarking
        (Ipv6Addr::new(0x2001, 0x0db8, 0, 0, 0, 0, 0, 0), 32), // documentation
        (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20), // documentation
        (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7),  // unique local
        (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10), // link-local
        (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10), // site-local (deprecated)
        (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8),  // multicast
    ];
    networks
        .iter()
        .any(|(network, prefix_length)| in_ipv6_network(address, *network, *prefix_length))
}

fn is_private_ipv6(address: Ipv6Addr) -> bool {
    // IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d, which holds :: and ::1) and
    // NAT64 (64:ff9b::a.b.c.d) reach the IPv4 address in their last 32 bits; 6to4
    // (2002:aabb:ccdd::/48) reaches the one in bits 16..48.
    let embedding_networks = [
        (Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96),
        (Ipv6Addr::UNSPECIFIED, 96),
        (Ipv6Addr::new(0x0064, 0xff9b, 0, 0, 0, 0, 0, 0), 96),
    ];
    if embedding_networks
        .iter()
        .any(|(network, prefix_length)| in_ipv6_network(address, *network, *prefix_length))
    {
        return is_private_ipv4(embedded_ipv4(address, 96));
    }
    if in_ipv6_network(address, Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16) {
        return is_private_ipv4(embedded_ipv4(address, 16));
    }
    is_private_ipv6_network(address)
}

/// What the URL's host says of its target before anything is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiteralTarget {
    /// The host is an IP address (in whatever spelling the URL parser normalised) that is not
    /// public.
    Private,
    /// The host is a public IP address.
    Public,
    /// The host is a name: it can only be judged once it is resolved, at delivery time.
    Name,
    /// The URL does not parse or has no host.
    Invalid,
}

/// Judges a hook URL's host as written. The URL parser (WHATWG rules) normalises the decimal,
/// octal, hexadecimal and shortened IPv4 spellings (`2130706433`, `0x7f.1`, `017700000001`,
/// `127.1`) and full-width digits to the address they mean, so each is judged as that address.
pub fn literal_target(url: &str) -> LiteralTarget {
    let Ok(url) = Url::parse(url) else {
        return LiteralTarget::Invalid;
    };
    let address = match url.host() {
        None => return LiteralTarget::Invalid,
        Some(Host::Domain(_)) => return LiteralTarget::Name,
        Some(Host::Ipv4(address)) => IpAddr::V4(address),
        Some(Host::Ipv6(address)) => IpAddr::V6(address),
    };
    if is_private_address(address) {
        LiteralTarget::Private
    } else {
        LiteralTarget::Public
    }
}

/// The error a host name resolving to a non-public address fails with. The delivery finds it in
/// the HTTP client's error chain to log `refused: private address`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrivateTargetRefused;

impl fmt::Display for PrivateTargetRefused {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("the host resolves to a private address")
    }
}

impl Error for PrivateTargetRefused {}

/// Whether `error` or any error below it is a [`PrivateTargetRefused`].
pub fn is_refused_as_private(error: &(dyn Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.is::<PrivateTargetRefused>() {
            return true;
        }
        current = error.source();
    }
    false
}

/// The HTTP client's resolver for webhook hosts: resolves the name each time a connection is
/// made (the client keeps no addresses of its own), refuses the whole name when any address it
/// resolves to is not public (unless private targets are allowed), and otherwise hands the
/// client exactly the addresses it checked, which are the ones it connects to.
#[derive(Debug, Clone, Copy)]
pub struct CheckedResolver {
    pub allow_private_targets: bool,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private_targets = self.allow_private_targets;
        Box::pin(async move {
            // The port is the URL's: the client sets it on every address it is handed.
            let addresses: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            if !allow_private_targets
                && addresses
                    .iter()
                    .any(|address| is_private_address(address.ip()))
            {
                return Err(Box::new(PrivateTargetRefused) as Box<dyn Error + Send + Sync>);
            }
            let addresses: Addrs = Box::new(addresses.into_iter());
            Ok(addresses)
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn v4(text: &str) -> IpAddr {
        IpAddr::V4(text.parse().expect("an IPv4 address"))
    }

    fn v6(text: &str) -> IpAddr {
        IpAddr::V6(text.parse().expect("an IPv6 address"))
    }

    #[test]
    fn every_special_ipv4_range_is_private_at_both_ends() {
        for text in [
            "0.0.0.0",
            "0.255.255.255",
            "10.0.0.0",
            "10.255.255.255",
            "100.64.0.0",
            "100.127.255.255",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.169.254",
            "169.254.0.0",
            "172.16.0.0",
            "172.31.255.255",
            "192.0.0.0",
            "192.0.0.255",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.0.0",
            "192.168.255.255",
            "198.18.0.0",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.255",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(is_private_address(v4(text)), "{text} is private");
        }
    }

    #[test]
    fn public_ipv4_addresses_next_to_the_ranges_are_public() {
        for text in [
            "1.1.1.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "169.255.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.0",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
        ] {
            assert!(!is_private_address(v4(text)), "{text} is public");
        }
    }

    #[test]
    fn special_ipv6_addresses_are_private_and_global_ones_public() {
        for text in [
            "::",
            "::1",
            "fc00::1",
            "fdff:ffff::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "2002:7f00:1::",
            "2002:c0a8:101::1",
            "2001::1",
            "2001:db8::1",
            "100::1",
        ] {
            assert!(is_private_address(v6(text)), "{text} is private");
        }
        for text in [
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(!is_private_address(v6(text)), "{text} is public");
        }
    }

    #[test]
    fn every_spelling_of_an_ipv4_address_is_judged_as_that_address() {
        for url in [
            "http://127.0.0.1/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0x7F.0.0.1/",
            "http://017700000001/",
            "http://0177.0.0.01/",
            "http://0x7f000001/",
            "http://127.1/",
            "http://127.0.1/",
            "http://127.0.0.1./",
            "http://１２７.０.０.１/",
            "http://0/",
            "http://[::1]/",
            "http://[::ffff:7f00:1]/",
            "http://[0:0:0:0:0:ffff:127.0.0.1]/",
            "http://169.254.169.254/latest/meta-data/",
            "http://0xa9.0xfe.0xa9.0xfe/",
            "http://2852039166/",
            "http://user:pass@10.0.0.1:8080/",
        ] {
            assert_eq!(literal_target(url), LiteralTarget::Private, "{url}");
        }
        assert_eq!(literal_target("http://8.8.8.8/"), LiteralTarget::Public);
        assert_eq!(literal_target("http://134744072/"), LiteralTarget::Public);
        assert_eq!(literal_target("http://localhost/"), LiteralTarget::Name);
        assert_eq!(
            literal_target("http://127.0.0.1.example.com/"),
            LiteralTarget::Name
        );
        assert_eq!(literal_target("not a url"), LiteralTarget::Invalid);
    }

    #[test]
    fn a_refusal_is_found_below_the_errors_that_wrap_it() {
        #[derive(Debug)]
        struct Wrapper(Box<dyn Error + Send + Sync>);
        impl fmt::Display for Wrapper {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("wrapped")
            }
        }
        impl Error for Wrapper {
            fn source(&self) -> Option<&(dyn Error + 'static)> {
                Some(self.0.as_ref())
            }
        }
        let wrapped = Wrapper(Box::new(Wrapper(Box::new(PrivateTargetRefused))));
        assert!(is_refused_as_private(&wrapped));
        let other = Wrapper(Box::new(std::io::Error::other("refused")));
        assert!(!is_refused_as_private(&other));
    }

    proptest! {
        #[test]
        fn an_ipv6_form_of_an_ipv4_address_is_judged_as_that_address(bits in any::<u32>()) {
            let ipv4 = Ipv4Addr::from(bits);
            let private = is_private_address(IpAddr::V4(ipv4));
            let mapped = ipv4.to_ipv6_mapped();
            let [a, b, c, d] = ipv4.octets();
            let high = u16::from_be_bytes([a, b]);
            let low = u16::from_be_bytes([c, d]);
            let nat64 = Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, high, low);
            let six_to_four = Ipv6Addr::new(0x2002, high, low, 0, 0, 0, 0, 1);
            prop_assert_eq!(is_private_address(IpAddr::V6(mapped)), private);
            prop_assert_eq!(is_private_address(IpAddr::V6(nat64)), private);
            prop_assert_eq!(is_private_address(IpAddr::V6(six_to_four)), private);
            // IPv4-compatible addresses are deprecated; they are judged as the address they
            // embed too.
            prop_assert_eq!(is_private_address(IpAddr::V6(ipv4.to_ipv6_compatible())), private);
        }

        #[test]
        fn decimal_octal_and_hexadecimal_spellings_mean_the_same_address(bits in any::<u32>()) {
            let ipv4 = Ipv4Addr::from(bits);
            let [a, b, c, d] = ipv4.octets();
            let expected = if is_private_address(IpAddr::V4(ipv4)) {
                LiteralTarget::Private
            } else {
                LiteralTarget::Public
            };
            for spelling in [
                format!("{bits}"),
                format!("0x{bits:x}"),
                format!("0{bits:o}"),
                format!("0x{a:x}.0x{b:x}.0x{c:x}.0x{d:x}"),
                format!("0{a:o}.0{b:o}.0{c:o}.0{d:o}"),
                format!("{a}.{}", u32::from_be_bytes([0, b, c, d])),
                format!("{a}.{b}.{}", u16::from_be_bytes([c, d])),
            ] {
                let url = format!("http://{spelling}/hook");
                let parsed = Url::parse(&url).expect("the spelling parses");
                prop_assert_eq!(parsed.host(), Some(Host::Ipv4(ipv4)), "{}", url);
                prop_assert_eq!(literal_target(&url), expected, "{}", url);
            }
        }
    }
}
