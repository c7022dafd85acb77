//! The client's address: the socket peer, or a forwarded address when the peer is a proxy you
//! trust.
//!
//! The guide's rate limiter keys on `X-Forwarded-For` from anyone, so any client can claim any
//! address and dodge the limit. Arbor believes forwarding headers only when the TCP peer is in
//! [`TrustedProxies`], and then walks `X-Forwarded-For` from the right, skipping trusted hops,
//! to the first address a trusted proxy saw.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use http::request::Parts;
use http::HeaderMap;
use ipnet::IpNet;

use crate::ApiError;

/// The resolved client address of a request.
///
/// Inserted by [`crate::App`]; as an extractor it falls back to the socket peer when the app
/// layer is not installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// The client address recorded for this request, if any.
    pub fn from_parts(parts: &Parts) -> Option<IpAddr> {
        Self::from_extensions(&parts.extensions)
    }

    /// The same, from a request's extensions.
    pub fn from_extensions(extensions: &http::Extensions) -> Option<IpAddr> {
        extensions.get::<ClientIp>().map(|ip| ip.0).or_else(|| {
            extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip())
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Self::from_parts(parts).map(ClientIp).ok_or_else(|| {
            tracing::error!(
                "no client address: serve with arbor::serve (it records the peer address)"
            );
            ApiError::internal()
        })
    }
}

/// Proxy networks whose `X-Forwarded-For` / `X-Real-IP` headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    networks: Arc<[IpNet]>,
}

impl TrustedProxies {
    /// Trusts nothing: the socket peer is the client.
    pub fn none() -> Self {
        Self::default()
    }

    /// Trusts these networks (`"10.0.0.0/8"`, `"127.0.0.1"`, `"::1/128"`).
    ///
    /// # Errors
    /// If an entry is neither an address nor a CIDR network.
    pub fn new<I, T>(networks: I) -> Result<Self, String>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        let networks = networks
            .into_iter()
            .map(|n| {
                let n = n.as_ref().trim();
                n.parse::<IpNet>()
                    .or_else(|_| n.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        format!("trusted proxy `{n}` is neither an IP address nor a CIDR network")
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            networks: networks.into(),
        })
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.networks.iter().any(|n| n.contains(&ip))
    }

    /// The client address for a request from `peer` with these headers.
    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return canonical(peer);
        }
        let forwarded: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|hop| parse_hop(hop.trim()))
            .collect();
        if let Some(client) = forwarded.iter().rev().copied().find(|ip| !self.trusts(*ip)) {
            return canonical(client);
        }
        if let Some(first) = forwarded.first() {
            // Every hop is trusted: the left-most is the origin.
            return canonical(*first);
        }
        headers
            .get("x-real-ip")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_hop(v.trim()))
            .map_or(canonical(peer), canonical)
    }
}

fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) count as the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Records each request's [`ClientIp`], resolved through [`TrustedProxies`] (installed by
/// [`crate::App`]).
#[derive(Debug, Clone)]
pub(crate) struct ResolveClientIpLayer(pub(crate) TrustedProxies);

impl<S> tower::Layer<S> for ResolveClientIpLayer {
    type Service = ResolveClientIp<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ResolveClientIp {
            inner,
            proxies: self.0.clone(),
        }
    }
}

/// See [`ResolveClientIpLayer`].
#[derive(Debug, Clone)]
pub(crate) struct ResolveClientIp<S> {
    inner: S,
    proxies: TrustedProxies,
}

impl<S, B> tower::Service<http::Request<B>> for ResolveClientIp<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        if let Some(ConnectInfo(peer)) = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .copied()
        {
            let client = self.proxies.resolve(peer.ip(), request.headers());
            request.extensions_mut().insert(ClientIp(client));
        }
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, v.parse().unwrap());
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peers_cannot_claim_another_address() {
        let proxies = TrustedProxies::new(["10.0.0.0/8"]).unwrap();
        let spoofed = headers(&[("x-forwarded-for", "1.2.3.4"), ("x-real-ip", "5.6.7.8")]);
        assert_eq!(
            proxies.resolve(ip("203.0.113.9"), &spoofed),
            ip("203.0.113.9")
        );
        assert_eq!(
            TrustedProxies::none().resolve(ip("10.0.0.1"), &spoofed),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn trusted_proxies_walk_forwarded_for_from_the_right() {
        let proxies = TrustedProxies::new(["10.0.0.0/8", "192.168.1.1"]).unwrap();
        // The client prepended a fake hop; the trusted proxy appended the real one.
        let chain = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.1.2.3")]);
        assert_eq!(
            proxies.resolve(ip("192.168.1.1"), &chain),
            ip("198.51.100.7")
        );
        let real_ip = headers(&[("x-real-ip", "198.51.100.8")]);
        assert_eq!(
            proxies.resolve(ip("10.9.9.9"), &real_ip),
            ip("198.51.100.8")
        );
        let garbage = headers(&[("x-forwarded-for", "not-an-ip")]);
        assert_eq!(proxies.resolve(ip("10.9.9.9"), &garbage), ip("10.9.9.9"));
    }

    #[test]
    fn mapped_ipv6_counts_as_ipv4_and_bad_config_is_an_error() {
        let proxies = TrustedProxies::new(["127.0.0.1"]).unwrap();
        let chain = headers(&[("x-forwarded-for", "198.51.100.7")]);
        assert_eq!(
            proxies.resolve(ip("::ffff:127.0.0.1"), &chain),
            ip("198.51.100.7")
        );
        assert!(TrustedProxies::new(["10.0.0.0/33"]).is_err());
    }
}
