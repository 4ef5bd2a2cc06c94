//! The active service nodes' derived identities (libp2p peer id, X25519 key), kept per chain tip.
//!
//! Both come from a node's Ed25519 primary key through point decompressions (a square root in
//! the field, about 10 µs each: one for the X25519 key, and libp2p makes its own for the peer
//! id) and, for X25519, an inversion. The relay needs the peer id of the
//! next hop for every layer it forwards and the SN-only protocols need "which service node is
//! this peer" for every request; `get_swarm` lists every member's X25519 key. Computing them
//! per request cost the destination of an onion `get_swarm` about 15 µs per swarm member,
//! under the node's lock. Here they are computed once per key and kept while the key is
//! active: the directory holds exactly the active set of the tip it was built for.
//!
//! It also keeps the tip's swarm ids, sorted: every owner lookup (which swarm owns an account)
//! needs them, and collecting and sorting them per lookup, under the chain lock, cost a pass
//! over every registered node for each message a peer pushes. And it remembers the last few
//! layouts of the swarms (which node was in which swarm), so that a node can tell a hand-over
//! from a member of the swarm that owned an account before the swarms changed from a push by
//! a node that never held it.

use std::collections::HashMap;
use std::sync::Arc;

use libp2p::PeerId;
use sispop_chain::{BlockHash, PublicKey};
use sispop_storage::UserPubkey;
use sispop_swarm::{swarm_for_pubkey, UNASSIGNED_SWARM_ID};

use crate::node::NodeState;

/// What a service node's primary key gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnIds {
    /// Its libp2p peer id.
    pub peer: PeerId,
    /// Its X25519 key (the Montgomery form of its Ed25519 key), the one onion layers are
    /// encrypted to.
    pub x25519: [u8; 32],
}

impl SnIds {
    /// The identities of a primary key; `None` for bytes that are not a curve point.
    pub fn derive(pk: &PublicKey) -> Option<SnIds> {
        let point = curve25519_dalek::edwards::CompressedEdwardsY(pk.0).decompress()?;
        let ed = libp2p::identity::ed25519::PublicKey::try_from_bytes(&pk.0).ok()?;
        Some(SnIds {
            peer: libp2p::identity::PublicKey::from(ed).to_peer_id(),
            x25519: point.to_montgomery().to_bytes(),
        })
    }
}

/// Layouts of the swarms remembered (the current one included).
pub const LAYOUTS: usize = 16;

/// One layout of the swarms: the swarm ids, and each active node's swarm.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    ids: Arc<[u64]>,
    swarm_of: HashMap<PublicKey, u64>,
}

impl Layout {
    fn of(state: &sispop_staking::State) -> Layout {
        Layout {
            ids: swarm_ids(state).into(),
            swarm_of: state.active().map(|(pk, n)| (*pk, n.swarm_id)).collect(),
        }
    }

    /// Whether `node` is in the swarm that owns `account`.
    pub fn holds(&self, node: &PublicKey, account: &sispop_storage::UserPubkey) -> bool {
        let owner = owner_among(&self.ids, account);
        owner.is_some() && self.swarm_of.get(node).copied() == owner
    }
}

/// The active service nodes of one tip, both ways.
#[derive(Default)]
pub struct SnDirectory {
    tip: Option<BlockHash>,
    by_peer: HashMap<PeerId, PublicKey>,
    by_key: HashMap<PublicKey, SnIds>,
    swarm_ids: Arc<[u64]>,
    /// The last [`LAYOUTS`] distinct layouts, oldest first; the last is the tip's.
    layouts: std::collections::VecDeque<Arc<Layout>>,
}

impl SnDirectory {
    /// Brings the directory to the chain's tip: the active set of its state. Keys that stay
    /// active keep what was derived for them; only new ones are derived.
    pub fn refresh(&mut self, st: &NodeState) {
        let tip = st.chain.tip().1;
        if self.tip == Some(tip) {
            return;
        }
        let mut old = std::mem::take(&mut self.by_key);
        self.by_key = st
            .chain
            .ext()
            .state()
            .active()
            .filter_map(|(pk, _)| {
                let ids = old.remove(pk).or_else(|| SnIds::derive(pk))?;
                Some((*pk, ids))
            })
            .collect();
        self.by_peer = self.by_key.iter().map(|(pk, i)| (i.peer, *pk)).collect();
        let list = st.chain.ext();
        if self.layouts.is_empty() {
            // At start: what the chain still remembers.
            for state in list.recent_states() {
                self.remember(Layout::of(state));
            }
        }
        self.remember(Layout::of(list.state()));
        self.swarm_ids = self
            .layouts
            .back()
            .map(|l| l.ids.clone())
            .unwrap_or_default();
        self.tip = Some(tip);
    }

    /// The active service node a peer is.
    pub fn by_peer(&self, peer: &PeerId) -> Option<PublicKey> {
        self.by_peer.get(peer).copied()
    }

    /// An active service node's identities.
    pub fn by_key(&self, pk: &PublicKey) -> Option<SnIds> {
        self.by_key.get(pk).copied()
    }

    fn remember(&mut self, layout: Layout) {
        if self.layouts.back().is_some_and(|l| **l == layout) {
            return;
        }
        self.layouts.push_back(Arc::new(layout));
        while self.layouts.len() > LAYOUTS {
            self.layouts.pop_front();
        }
    }

    /// Whether, in one of the last [`LAYOUTS`] layouts of the swarms (the tip's included),
    /// `node` was a member of the swarm that owned `account`: it may hold the account's
    /// messages, and hand them over.
    pub fn held(&self, node: &PublicKey, account: &sispop_storage::UserPubkey) -> bool {
        self.layouts.iter().any(|l| l.holds(node, account))
    }

    /// The recent layouts, oldest first (for many [`Layout::holds`] questions at once).
    pub fn layouts(&self) -> Vec<Arc<Layout>> {
        self.layouts.iter().cloned().collect()
    }

    /// The ids of the swarms with active members, sorted (the storage service routes by it).
    pub fn swarm_ids(&self) -> std::sync::Arc<[u64]> {
        self.swarm_ids.clone()
    }
}

/// The ids of the swarms with active members, sorted.
pub fn swarm_ids(state: &sispop_staking::State) -> Vec<u64> {
    let mut ids: Vec<u64> = state
        .active()
        .map(|(_, n)| n.swarm_id)
        .filter(|id| *id != UNASSIGNED_SWARM_ID)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The swarm among `ids` (from [`swarm_ids`]) that owns an account.
pub fn owner_among(ids: &[u64], pubkey: &UserPubkey) -> Option<u64> {
    let mut raw = [0u8; 33];
    raw[0] = pubkey.prefix;
    raw[1..].copy_from_slice(&pubkey.key);
    swarm_for_pubkey(ids, &raw).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_match_the_separate_derivations() {
        let sk = ed25519_dalek::SigningKey::from_bytes(&[5u8; 32]);
        let pk = PublicKey(sk.verifying_key().to_bytes());
        let ids = SnIds::derive(&pk).expect("a point");
        assert_eq!(Some(ids.peer), crate::p2p::peer_id_of(&pk));
        assert_eq!(ids.x25519, sk.verifying_key().to_montgomery().to_bytes());
        // Not a point: nothing.
        let mut bad = [0u8; 32];
        bad[0] = 2;
        assert!(curve25519_dalek::edwards::CompressedEdwardsY(bad)
            .decompress()
            .is_none());
        assert_eq!(SnIds::derive(&PublicKey(bad)), None);
    }
}
