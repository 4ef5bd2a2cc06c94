//! What this node knows of the service nodes' proofs and of its own accountability work: the
//! proof book (each node's last proof, addresses, probe and storage-test results), the votes
//! collected, and counters. It is behind [`crate::node::Node::acct`], for the services that
//! read or add to it (accountability, storage tests, RPC, metrics); what to do with it is the
//! accountability service's ([`crate::accountability`]).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sispop_chain::PublicKey;
use sispop_testing::{NewState, ProofBook, VotePool};
use tracing::{info, warn};

/// Counters shown by `get_info` and logs.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Counters {
    /// Own proofs published.
    pub proofs_sent: u64,
    /// Proofs accepted from the network.
    pub proofs_received: u64,
    /// Proofs refused.
    pub proofs_rejected: u64,
    /// Votes we cast.
    pub votes_cast: u64,
    /// Valid votes received.
    pub votes_received: u64,
    /// Votes refused.
    pub votes_rejected: u64,
    /// State-change transactions we put in the pool.
    pub state_changes_submitted: u64,
}

/// What this node has seen and done; behind [`Node::acct`].
#[derive(Debug)]
pub struct Accountability {
    /// Proofs and probe results of every registered node.
    pub book: ProofBook,
    /// Votes collected toward state changes.
    pub votes: VotePool,
    /// Counters.
    pub counters: Counters,
    /// Obligations heights we have judged as a validator.
    pub(crate) judged: BTreeSet<u64>,
    /// Vote groups we turned into a transaction.
    pub(crate) submitted: HashSet<(u64, u16, NewState)>,
    /// When we last probed each node.
    pub(crate) probed: HashMap<PublicKey, u64>,
    /// When our last proof went out (0: not since start).
    pub(crate) last_proof_sent: u64,
    /// Where the book is kept.
    pub(crate) path: Option<PathBuf>,
    pub(crate) dirty: bool,
}

impl Accountability {
    /// Loads the book from `data_dir/proofs.json` (an unreadable file is logged and replaced).
    pub fn load(path: Option<PathBuf>) -> Accountability {
        let book = path
            .as_ref()
            .filter(|p| p.exists())
            .and_then(|p| match std::fs::read(p) {
                Ok(b) => serde_json::from_slice::<ProofBook>(&b)
                    .map_err(|e| warn!(file = %p.display(), error = %e, "uptime proof store unreadable; starting empty"))
                    .ok(),
                Err(e) => {
                    warn!(file = %p.display(), error = %e, "uptime proof store unreadable; starting empty");
                    None
                }
            })
            .unwrap_or_default();
        if !book.is_empty() {
            info!(nodes = book.len(), "loaded uptime proofs");
        }
        Accountability {
            book,
            votes: VotePool::new(),
            counters: Counters::default(),
            judged: BTreeSet::new(),
            submitted: HashSet::new(),
            probed: HashMap::new(),
            last_proof_sent: 0,
            path,
            dirty: false,
        }
    }

    /// Writes the book if it changed (atomically: a temporary file, then a rename).
    pub fn save(&mut self) {
        let Some(path) = self.path.clone() else {
            return;
        };
        if !self.dirty {
            return;
        }
        let tmp = path.with_extension("json.tmp");
        let result = serde_json::to_vec(&self.book)
            .map_err(std::io::Error::other)
            .and_then(|b| std::fs::write(&tmp, b))
            .and_then(|()| std::fs::rename(&tmp, &path));
        match result {
            Ok(()) => self.dirty = false,
            Err(e) => warn!(file = %path.display(), error = %e, "cannot save uptime proofs"),
        }
    }
}
