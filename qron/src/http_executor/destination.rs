//! Where the HTTP executor may send a request: public addresses, and what the operator allowed
//! by host name or address range. Checked where the connection is made (the resolver the HTTP
//! client uses, and the address of a URL that names one), so a name that resolves to a public
//! address when the job is made and to loopback when it runs (DNS rebinding) is refused too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

/// The operator's choices: host names and ranges allowed, and whether private addresses are.
#[derive(Debug, Clone, Default)]
pub(crate) struct Destinations {
    /// Host names allowed whatever they resolve to (lower case, no trailing dot).
    hosts: Vec<String>,
    /// Address ranges allowed, whatever their kind.
    ranges: Vec<IpNet>,
    /// Loopback, private, link-local, CGNAT and unique-local addresses allowed.
    private: bool,
}

/// Why a destination was refused: the error the resolver gives, found again in the request's
/// error chain to fail the job at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused(pub(crate) String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// An address's kind, when it is not a public unicast one.
fn special(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if is_metadata(IpAddr::V4(ip)) => "a cloud metadata",
        (127, ..) => "a loopback",
        (10, ..) | (172, 16..=31, _) | (192, 168, _) => "a private",
        (169, 254, _) => "a link-local",
        (100, 64..=127, _) => "a shared (CGNAT)",
        (0, ..) => "an unspecified",
        (224..=239, ..) => "a multicast",
        (240..=255, ..) => "a reserved or broadcast",
        (192, 0, 0) | (192, 0, 2) | (198, 51, 100) | (203, 0, 113) | (198, 18..=19, _) => {
            "a reserved"
        }
        _ => return None,
    })
}

fn special_v6(ip: Ipv6Addr) -> Option<&'static str> {
    // An IPv4 address written in IPv6 (mapped, compatible, NAT64, 6to4) is judged as itself.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return special_v4(v4);
    }
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if s[..6] == [0; 6] && !ip.is_loopback() && !ip.is_unspecified() {
        return special_v4(embedded(s[6], s[7])).or(Some("an IPv4-compatible"));
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return special_v4(embedded(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return special_v4(embedded(s[1], s[2]));
    }
    Some(match s[0] {
        _ if is_metadata(IpAddr::V6(ip)) => "a cloud metadata",
        _ if ip.is_loopback() => "a loopback",
        _ if ip.is_unspecified() => "an unspecified",
        0xfc00..=0xfdff => "a unique-local (private)",
        0xfe80..=0xfebf => "a link-local",
        0xfec0..=0xfeff => "a site-local",
        0xff00..=0xffff => "a multicast",
        0x2001 if s[1] == 0x0db8 || s[1] == 0 => "a reserved",
        _ => return None,
    })
}

/// The instance metadata services of the clouds (AWS, GCP, Azure, Alibaba, ECS tasks).
fn is_metadata(ip: IpAddr) -> bool {
    const V4: [Ipv4Addr; 3] = [
        Ipv4Addr::new(169, 254, 169, 254),
        Ipv4Addr::new(169, 254, 170, 2),
        Ipv4Addr::new(100, 100, 100, 200),
    ];
    match ip {
        IpAddr::V4(v4) => V4.contains(&v4),
        IpAddr::V6(v6) => v6 == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254),
    }
}

/// Whether `private` covers this kind (multicast, unspecified, reserved and metadata
/// addresses need a range of their own in `allow_hosts`).
fn is_private_kind(kind: &str) -> bool {
    matches!(
        kind,
        "a loopback"
            | "a private"
            | "a link-local"
            | "a shared (CGNAT)"
            | "a unique-local (private)"
            | "a site-local"
    )
}

impl Destinations {
    /// Adds an allowed host name, address or range (`"billing.internal"`, `"10.1.2.3"`,
    /// `"10.0.0.0/8"`, `"[::1]"`).
    pub(crate) fn allow(&mut self, entry: &str) {
        let entry = entry.trim().trim_end_matches('.').to_ascii_lowercase();
        let bare = entry.trim_start_matches('[').trim_end_matches(']');
        if let Ok(net) = bare.parse::<IpNet>() {
            self.ranges.push(net);
        } else if let Ok(ip) = bare.parse::<IpAddr>() {
            self.ranges.push(IpNet::from(ip));
        } else {
            self.hosts.push(entry);
        }
    }

    /// Allows every private kind (loopback, private, link-local, CGNAT, unique-local).
    pub(crate) fn allow_private(&mut self, yes: bool) {
        self.private = yes;
    }

    /// Whether `host` (a URL's host name) is allowed whatever it resolves to.
    fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.hosts.contains(&host)
    }

    /// Whether a connection to `ip` is allowed, or why not.
    pub(crate) fn check(&self, host: &str, ip: IpAddr) -> Result<(), Refused> {
        if self.ranges.iter().any(|r| r.contains(&ip)) || self.host_allowed(host) {
            return Ok(());
        }
        match special(ip) {
            None => Ok(()),
            Some(kind) if self.private && is_private_kind(kind) => Ok(()),
            Some(kind) => Err(Refused(format!(
                "the destination {host} ({ip}) is refused: {kind} address; allow it with \
                 HttpExecutor::allow_hosts or allow_private"
            ))),
        }
    }

    /// The addresses of `host` a connection may use: the allowed ones, or the refusal when
    /// none is.
    pub(crate) fn filter(
        &self,
        host: &str,
        addrs: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<Vec<SocketAddr>, Refused> {
        let mut allowed = Vec::new();
        let mut refusal = None;
        for addr in addrs {
            match self.check(host, addr.ip()) {
                Ok(()) => allowed.push(addr),
                Err(e) => refusal = refusal.or(Some(e)),
            }
        }
        match (allowed.is_empty(), refusal) {
            (true, Some(e)) => Err(e),
            _ => Ok(allowed),
        }
    }
}

/// The HTTP client's resolver: the system's, with every address checked.
#[derive(Debug, Clone)]
pub(crate) struct Resolver(pub(crate) Arc<Destinations>);

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let destinations = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let allowed = destinations.filter(&host, found)?;
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(d: &Destinations, ip: &str) -> bool {
        let ip: IpAddr = ip.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        d.check("h", ip).is_err()
    }

    #[test]
    fn every_non_public_kind_is_refused_by_default_and_public_ones_pass() {
        let d = Destinations::default();
        for ip in [
            "127.0.0.1",
            "127.1.2.3",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.0.1",
            "169.254.169.254",
            "169.254.1.1",
            "100.64.0.1",
            "100.127.255.255",
            "100.100.100.200",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "fd00::1",
            "fc00::1",
            "fe80::1",
            "ff02::1",
            "fd00:ec2::254",
        ] {
            assert!(refused(&d, ip), "{ip}");
        }
        for ip in [
            "1.1.1.1",
            "93.184.216.34",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
        ] {
            assert!(!refused(&d, ip), "{ip}");
        }
    }

    #[test]
    fn the_operator_allows_private_kinds_ranges_and_host_names() {
        let mut d = Destinations::default();
        d.allow_private(true);
        assert!(!refused(&d, "127.0.0.1") && !refused(&d, "10.1.1.1") && !refused(&d, "fd00::1"));
        // Metadata and multicast stay refused unless named.
        assert!(refused(&d, "169.254.169.254") && refused(&d, "224.0.0.1"));
        let mut d = Destinations::default();
        d.allow("10.0.0.0/8");
        d.allow("[::1]");
        d.allow("Billing.Internal.");
        assert!(!refused(&d, "10.9.9.9") && !refused(&d, "::1"));
        assert!(refused(&d, "192.168.1.1") && refused(&d, "127.0.0.1"));
        let local: IpAddr = "127.0.0.1"
            .parse()
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert!(d.check("billing.internal", local).is_ok());
        assert!(d.check("other.internal", local).is_err());
    }

    #[test]
    fn a_name_that_resolves_to_a_refused_address_keeps_its_allowed_ones_only() {
        let d = Destinations::default();
        let public: SocketAddr = "1.1.1.1:80".parse().unwrap_or_else(|_| unreachable!());
        let local: SocketAddr = "127.0.0.1:80".parse().unwrap_or_else(|_| unreachable!());
        assert_eq!(d.filter("h", [local, public]), Ok(vec![public]));
        let only_local = d.filter("h", [local]);
        assert!(only_local.is_err_and(|e| e.0.contains("loopback")));
    }
}
