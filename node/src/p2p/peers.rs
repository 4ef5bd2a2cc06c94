//! Peers beyond the seeds: an address book filled by peer exchange (`Request::Peers`) and
//! identify, the dialing policy (inbound and outbound limits, outbound slots kept for seeds
//! and service nodes), bans keyed by address as well as by key, and gossipsub peer scoring.

use std::net::IpAddr;

use libp2p::multiaddr::Protocol;

use super::*;
use crate::p2p::wire::{MAX_PEER_ADDRS, MAX_PEER_ADDR_BYTES};

/// Inbound connections at most: peers that dial us can never take the outbound slots.
pub const MAX_INBOUND: u32 = 96;
/// Outbound connections at most (seeds, service nodes we talk to, discovered peers).
pub const MAX_OUTBOUND: u32 = 64;
/// Outbound connections to discovered peers the node opens on its own; the other outbound
/// slots stay free for seeds and service nodes.
pub const DISCOVERED_OUTBOUND: usize = 8;
/// Addresses kept in the book (the oldest heard-of go first).
pub const MAX_KNOWN: usize = 1_000;

/// Where a peer can be dialled, as this node has heard.
#[derive(Default)]
pub(super) struct PeerBook {
    /// Address (with `/p2p/<id>` when known) → when last heard of, and whether the peer
    /// itself told us (identify) rather than another peer (exchange).
    known: HashMap<Multiaddr, (Instant, bool)>,
    /// Addresses banned with their peer (public addresses only), until.
    banned_ips: HashMap<IpAddr, Instant>,
    /// Discovered addresses being dialled, since when.
    dialing: HashMap<Multiaddr, Instant>,
    /// Peers connected because we dialled them from the book.
    discovered: HashSet<PeerId>,
    /// The remote address of each connected peer.
    remote: HashMap<PeerId, Multiaddr>,
}

/// The IP address of a `/ip4|ip6/…` multiaddr.
pub fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

/// The address a ban also covers: the IP of a peer reached over anything but loopback. (Many
/// nodes share 127.0.0.1 on one machine, as on a devnet; there only the key is banned.)
pub fn ban_key(addr: &Multiaddr) -> Option<IpAddr> {
    ip_of(addr).filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
}

/// Whether an address heard from a peer is worth keeping: `/ip4|ip6/<ip>/tcp/<port>`
/// (optionally `/p2p/<id>`), a usable IP, short enough to pass on; loopback and private
/// addresses only when `local` (a devnet).
pub fn dialable(addr: &Multiaddr, local: bool) -> bool {
    let mut it = addr.iter();
    let ip = match it.next() {
        Some(Protocol::Ip4(ip)) => IpAddr::V4(ip),
        Some(Protocol::Ip6(ip)) => IpAddr::V6(ip),
        _ => return false,
    };
    if !matches!(it.next(), Some(Protocol::Tcp(p)) if p != 0) {
        return false;
    }
    match it.next() {
        None | Some(Protocol::P2p(_)) => {}
        _ => return false,
    }
    if it.next().is_some() || addr.to_vec().len() > MAX_PEER_ADDR_BYTES || ip.is_unspecified() {
        return false;
    }
    let private = match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00,
    };
    local || !private
}

impl PeerBook {
    /// Remembers an address heard of now; `first_hand` when the peer itself gave it. When
    /// full, the oldest second-hand address goes first, so a peer that floods the exchange
    /// with addresses cannot push out those of peers we have met.
    pub fn learn(&mut self, addr: Multiaddr, local: bool, now: Instant, first_hand: bool) {
        if !dialable(&addr, local) || ip_of(&addr).is_some_and(|ip| self.banned(ip, now)) {
            return;
        }
        let first_hand = first_hand || self.known.get(&addr).is_some_and(|e| e.1);
        self.known.insert(addr, (now, first_hand));
        if self.known.len() > MAX_KNOWN {
            if let Some(oldest) = self
                .known
                .iter()
                .min_by_key(|(_, (t, first))| (*first, *t))
                .map(|(a, _)| a.clone())
            {
                self.known.remove(&oldest);
            }
        }
    }

    /// Up to [`MAX_PEER_ADDRS`] known addresses, chosen at random.
    pub fn sample(&self, rng: &mut impl rand::Rng) -> Vec<Multiaddr> {
        use rand::seq::IteratorRandom;
        self.known
            .keys()
            .cloned()
            .choose_multiple(rng, MAX_PEER_ADDRS)
    }

    /// Addresses to dial: not of a connected peer, not being dialled, not banned.
    pub fn candidates(
        &self,
        connected: &HashSet<PeerId>,
        n: usize,
        now: Instant,
        rng: &mut impl rand::Rng,
    ) -> Vec<Multiaddr> {
        use rand::seq::IteratorRandom;
        self.known
            .keys()
            .filter(|a| !self.dialing.contains_key(*a))
            .filter(|a| !peer_of(a).is_some_and(|p| connected.contains(&p)))
            .filter(|a| !ip_of(a).is_some_and(|ip| self.banned(ip, now)))
            .cloned()
            .choose_multiple(rng, n)
    }

    /// Bans the address `addr` until `until` (when it is not loopback).
    pub fn ban(&mut self, addr: &Multiaddr, until: Instant) {
        if let Some(ip) = ban_key(addr) {
            self.banned_ips.insert(ip, until);
            self.known.retain(|a, _| ip_of(a) != Some(ip));
        }
    }

    /// Whether `ip` is banned now.
    pub fn banned(&self, ip: IpAddr, now: Instant) -> bool {
        self.banned_ips.get(&ip).is_some_and(|t| *t > now)
    }

    /// Forgets expired address bans.
    pub fn expire(&mut self, now: Instant) {
        self.banned_ips.retain(|_, t| *t > now);
    }
}

/// The peer id in an address's `/p2p/<id>`, if any.
fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

/// Gossipsub peer scoring: invalid messages on the block and transaction topics weigh
/// heavily; a devnet (many nodes on one address) does not count IP colocation.
pub fn score_params(local: bool) -> (gossipsub::PeerScoreParams, gossipsub::PeerScoreThresholds) {
    let mut params = gossipsub::PeerScoreParams {
        ip_colocation_factor_weight: if local { 0.0 } else { -10.0 },
        ip_colocation_factor_threshold: 4.0,
        // Broken gossip promises: a few are forgiven (messages leave caches), more cost.
        behaviour_penalty_weight: -1.0,
        behaviour_penalty_threshold: 6.0,
        ..Default::default()
    };
    for topic in [BLOCKS_TOPIC, TXS_TOPIC, PROOFS_TOPIC, VOTES_TOPIC] {
        let t = gossipsub::TopicScoreParams {
            topic_weight: 1.0,
            // Delivering first is worth a little; mesh delivery rates are not scored (a quiet
            // chain would punish honest peers).
            first_message_deliveries_weight: 1.0,
            first_message_deliveries_cap: 50.0,
            mesh_message_deliveries_weight: 0.0,
            mesh_failure_penalty_weight: 0.0,
            // Each message that fails validation costs a lot, and is forgotten slowly.
            invalid_message_deliveries_weight: -50.0,
            invalid_message_deliveries_decay: 0.9,
            ..Default::default()
        };
        params.topics.insert(IdentTopic::new(topic).hash(), t);
    }
    let thresholds = gossipsub::PeerScoreThresholds {
        gossip_threshold: -10.0,
        publish_threshold: -50.0,
        graylist_threshold: -80.0,
        accept_px_threshold: 10.0,
        opportunistic_graft_threshold: 5.0,
    };
    (params, thresholds)
}

impl Loop {
    /// Whether this network is a devnet (all nodes on loopback).
    pub(super) fn local(&self) -> bool {
        self.node.params.sn.allow_dev_faults
    }

    /// A connection came up: refuse it if its address is banned; note discovered peers.
    /// Returns false when it was refused.
    pub(super) fn peer_connected(&mut self, peer: PeerId, endpoint: &ConnectedPoint) -> bool {
        let remote = endpoint.get_remote_address().clone();
        if ip_of(&remote).is_some_and(|ip| self.book.banned(ip, Instant::now())) {
            debug!(%peer, %remote, "refused: banned address");
            let _ = self.swarm.disconnect_peer_id(peer);
            return false;
        }
        if let ConnectedPoint::Dialer { address, .. } = endpoint {
            if self.book.dialing.remove(address).is_some() {
                self.book.discovered.insert(peer);
            }
        }
        self.book.remote.insert(peer, remote);
        true
    }

    /// The last connection to `peer` closed.
    pub(super) fn peer_gone(&mut self, peer: PeerId) {
        self.book.discovered.remove(&peer);
        self.book.remote.remove(&peer);
    }

    /// A ban covers the peer's address too.
    pub(super) fn ban_address(&mut self, peer: PeerId, until: Instant) {
        if let Some(a) = self.book.remote.get(&peer).cloned() {
            self.book.ban(&a, until);
        }
    }

    /// Identify told us where `peer` listens.
    pub(super) fn identified(&mut self, peer: PeerId, listen: Vec<Multiaddr>) {
        let (local, now) = (self.local(), Instant::now());
        for a in listen.into_iter().take(MAX_PEER_ADDRS) {
            let a = if peer_of(&a).is_none() {
                a.with(Protocol::P2p(peer))
            } else {
                a
            };
            self.book.learn(a, local, now, true);
        }
    }

    /// A peer exchange answer.
    pub(super) fn peers_answered(&mut self, addrs: Vec<Vec<u8>>) {
        let (local, now) = (self.local(), Instant::now());
        let me = *self.swarm.local_peer_id();
        for bytes in addrs {
            // Only addresses naming their peer: dialling one reaches that peer or fails, so a
            // liar cannot aim our dials at arbitrary servers, and each entry is one peer.
            if let Ok(a) = Multiaddr::try_from(bytes) {
                if peer_of(&a).is_some_and(|p| p != me) {
                    self.book.learn(a, local, now, false);
                }
            }
        }
    }

    /// Our answer to a peer exchange request.
    pub(super) fn peers_to_share(&self) -> Response {
        let addrs = self.book.sample(&mut rand::rngs::OsRng);
        Response::Peers(addrs.iter().map(|a| a.to_vec()).collect())
    }

    /// Every redial round: while fewer discovered peers are connected than
    /// [`DISCOVERED_OUTBOUND`], ask a random peer for more addresses and dial some.
    pub(super) fn discover(&mut self) {
        let now = Instant::now();
        self.book.expire(now);
        self.book
            .dialing
            .retain(|_, since| now.duration_since(*since) < Duration::from_secs(30));
        let want = DISCOVERED_OUTBOUND.saturating_sub(self.book.discovered.len());
        if want == 0 {
            return;
        }
        if let Some(p) = self
            .connected
            .iter()
            .choose(&mut rand::rngs::OsRng)
            .copied()
        {
            self.swarm
                .behaviour_mut()
                .sync
                .send_request(&p, Request::Peers.to_bytes());
        }
        let mut me = self.connected.clone();
        me.insert(*self.swarm.local_peer_id());
        for a in self
            .book
            .candidates(&me, want.min(2), now, &mut rand::rngs::OsRng)
        {
            debug!(address = %a, "dialling a discovered peer");
            if self.swarm.dial(a.clone()).is_ok() {
                self.book.dialing.insert(a, now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ma(s: &str) -> Multiaddr {
        s.parse().expect("multiaddr")
    }

    #[test]
    fn only_plain_tcp_addresses_are_kept_and_private_ones_only_locally() {
        let id = PeerId::random();
        assert!(dialable(&ma("/ip4/8.8.8.8/tcp/22022"), false));
        assert!(dialable(
            &ma(&format!("/ip4/8.8.8.8/tcp/22022/p2p/{id}")),
            false
        ));
        assert!(!dialable(&ma("/ip4/127.0.0.1/tcp/22022"), false));
        assert!(dialable(&ma("/ip4/127.0.0.1/tcp/22022"), true));
        assert!(!dialable(&ma("/ip4/10.1.2.3/tcp/22022"), false));
        assert!(!dialable(&ma("/ip4/0.0.0.0/tcp/22022"), true));
        assert!(!dialable(&ma("/ip4/8.8.8.8/tcp/0"), true));
        assert!(!dialable(&ma("/ip4/8.8.8.8/udp/22022"), true));
        assert!(!dialable(&ma("/dns4/example.com/tcp/22022"), true));
        assert!(!dialable(&ma("/ip4/8.8.8.8/tcp/1/tcp/2"), true));
    }

    #[test]
    fn bans_cover_the_address_but_not_loopback() {
        let mut book = PeerBook::default();
        let now = Instant::now();
        let later = now + Duration::from_secs(600);
        let public = ma("/ip4/8.8.8.8/tcp/22022");
        book.learn(public.clone(), false, now, false);
        book.ban(&ma("/ip4/8.8.8.8/tcp/40000"), later);
        assert!(
            book.banned("8.8.8.8".parse().expect("ip"), now),
            "any port, any key"
        );
        assert!(book.known.is_empty(), "its addresses are forgotten");
        book.learn(public, false, now, true);
        assert!(book.known.is_empty(), "and not learnt again while banned");
        book.ban(&ma("/ip4/127.0.0.1/tcp/40000"), later);
        assert!(!book.banned("127.0.0.1".parse().expect("ip"), now));
        book.expire(later + Duration::from_secs(1));
        assert!(!book.banned(
            "8.8.8.8".parse().expect("ip"),
            later + Duration::from_secs(1)
        ));
    }

    #[test]
    fn the_book_is_bounded_and_candidates_skip_connected_peers() {
        let mut book = PeerBook::default();
        let t0 = Instant::now();
        for i in 0..(MAX_KNOWN + 50) {
            let a = ma(&format!(
                "/ip4/9.{}.{}.{}/tcp/22022",
                (i >> 16) & 255,
                (i >> 8) & 255,
                i & 255
            ));
            book.learn(a, false, t0 + Duration::from_millis(i as u64), i == 0);
        }
        assert_eq!(book.known.len(), MAX_KNOWN);
        assert!(
            book.known.contains_key(&ma("/ip4/9.0.0.0/tcp/22022")),
            "a first-hand address outlives the second-hand flood"
        );
        assert!(
            !book.known.contains_key(&ma("/ip4/9.0.0.1/tcp/22022")),
            "the oldest second-hand address went first"
        );
        let mut rng = rand::rngs::OsRng;
        assert_eq!(book.sample(&mut rng).len(), MAX_PEER_ADDRS);
        let mut small = PeerBook::default();
        let (p, q) = (PeerId::random(), PeerId::random());
        small.learn(ma(&format!("/ip4/8.8.8.8/tcp/1/p2p/{p}")), false, t0, true);
        small.learn(ma(&format!("/ip4/8.8.4.4/tcp/1/p2p/{q}")), false, t0, false);
        let connected: HashSet<PeerId> = [p].into_iter().collect();
        let c = small.candidates(&connected, 5, t0, &mut rng);
        assert_eq!(c, vec![ma(&format!("/ip4/8.8.4.4/tcp/1/p2p/{q}"))]);
    }

    #[test]
    fn score_parameters_are_valid_for_both_profiles() {
        for local in [false, true] {
            let (p, t) = score_params(local);
            p.validate().expect("params");
            t.validate().expect("thresholds");
        }
    }
}
