//! A service node for unit tests of the storage service: a chain at genesis whose service node
//! list is given (nodes with known seeds, in chosen swarms, quorums as needed), the storage
//! service open on a temporary directory, and no network. Requests from a peer are answered as
//! they would be off the wire ([`TestNode::request`]).

use std::sync::Arc;

use ed25519_dalek::SigningKey;
use libp2p::PeerId;
use sispop_chain::{genesis_block, Height, Network, NetworkParams, PublicKey};
use sispop_staking::{ServiceNodeList, State};

use crate::node::keys::ServiceNodeKeys;
use crate::node::{Chain, Node};
use crate::storage::server::Storage;

/// A node of the test network: its seed and keys.
pub struct Member {
    /// Its Ed25519 key (its primary key too).
    pub signer: SigningKey,
    /// Its primary key.
    pub pk: PublicKey,
    /// Its libp2p peer id.
    pub peer: PeerId,
}

impl Member {
    /// Member `i` (its seed is `[i + 1; 32]`).
    pub fn new(i: u8) -> Member {
        let seed = [i.wrapping_add(1); 32];
        let keys = ServiceNodeKeys::from_seed(&seed);
        Member {
            signer: SigningKey::from_bytes(&seed),
            pk: keys.primary,
            peer: crate::p2p::peer_id_of(&keys.primary).unwrap_or_else(PeerId::random),
        }
    }
}

/// The node under test (member 0 unless made with [`TestNode::as_member`]) and the list it
/// sees.
pub struct TestNode {
    /// The node.
    pub node: Node,
    /// Its storage service.
    pub storage: Arc<Storage>,
    /// Its relay service.
    pub relay: Arc<crate::relay::onion::Relay>,
    /// Every member, the node itself first.
    pub members: Vec<Member>,
    _dir: tempfile::TempDir,
}

/// The devnet's parameters.
pub fn params() -> &'static NetworkParams {
    NetworkParams::get(Network::Devnet)
}

impl TestNode {
    /// A node whose list holds `swarms.len()` active nodes, member `i` in swarm `swarms[i]`;
    /// member 0 is the node. `edit` may change the list further (quorums, states).
    pub fn new(swarms: &[u64], edit: impl FnOnce(&mut State, &[Member])) -> TestNode {
        TestNode::with_history(None, swarms, edit)
    }

    /// [`TestNode::new`], the list having been `before` (each member's swarm then) at the
    /// block before.
    pub fn with_history(
        before: Option<&[u64]>,
        swarms: &[u64],
        edit: impl FnOnce(&mut State, &[Member]),
    ) -> TestNode {
        TestNode::as_member(0, before, swarms, edit)
    }

    /// [`TestNode::with_history`], the node being member `me`.
    pub fn as_member(
        me: usize,
        before: Option<&[u64]>,
        swarms: &[u64],
        edit: impl FnOnce(&mut State, &[Member]),
    ) -> TestNode {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let members: Vec<Member> = (0..swarms.len())
            .map(|i| Member::new(u8::try_from(i).unwrap_or(u8::MAX)))
            .collect();
        let list = |swarms: &[u64]| {
            let genesis = genesis_block(params()).hash();
            let (mut state, _) = sispop_staking::testkit::state(0, (Height(0), genesis));
            for (i, (m, swarm)) in members.iter().zip(swarms).enumerate() {
                let (_, mut info) = sispop_staking::testkit::node(u32::try_from(i).unwrap_or(0));
                info.swarm_id = *swarm;
                state.nodes.insert(m.pk, Arc::new(info));
            }
            state
        };
        let mut state = list(swarms);
        edit(&mut state, &members);
        let history = before.map(list).into_iter().collect();
        let chain = Chain::open_with(
            params(),
            &dir.path().join("chain"),
            ServiceNodeList::from_states(params(), history, state),
        )
        .unwrap_or_else(|e| panic!("chain: {e}"));
        let seed = [u8::try_from(me + 1).unwrap_or(u8::MAX); 32];
        let keys = ServiceNodeKeys::from_seed(&seed);
        let node = Node::new(chain, None, Some(keys));
        let relay =
            crate::relay::onion::Relay::start(&seed, 1).unwrap_or_else(|e| panic!("relay: {e}"));
        let relay = Arc::new(relay);
        let (storage, _) = crate::storage::server::open(&node, dir.path())
            .unwrap_or_else(|e| panic!("storage: {e}"));
        let _ = storage
            .onion_entry
            .set(crate::relay::onion::at_entry(relay.clone()));
        TestNode {
            node,
            storage,
            relay,
            members,
            _dir: dir,
        }
    }

    /// The answer to `tag ‖ body` from member `from` on the storage protocol: the status and
    /// the body.
    pub fn request(&self, from: usize, tag: u8, body: &[u8]) -> (u16, Vec<u8>) {
        let mut data = vec![tag];
        data.extend_from_slice(body);
        let r = crate::storage::sync::on_request(
            &self.node,
            &self.storage,
            &self.members[from].peer,
            &data,
        );
        let status = u16::from_be_bytes([r[0], r[1]]);
        (status, r[2..].to_vec())
    }
}
