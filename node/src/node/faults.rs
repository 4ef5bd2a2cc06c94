//! Faults a devnet scenario can switch on (`--dev-fault`), refused on other networks. Each
//! service reads the switch that concerns it from [`crate::node::Node::faults`].

/// Faults a devnet scenario can switch on (`--dev-fault`), refused on other networks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DevFaults {
    /// Send no uptime proofs.
    pub no_proofs: bool,
    /// Leave SN-only pings unanswered.
    pub unreachable: bool,
    /// Acknowledge storage writes and keep nothing (the store is emptied at start).
    pub drop_storage: bool,
    /// Answer sync tip requests with a far higher chain and far more work than this node has
    /// (and serve only the blocks it really has): a lying peer for sync tests.
    pub lie_tip: bool,
    /// Neither accept nor open persistent service-node links (`/sispop/sn-link/2`), as a node
    /// of a build without them: peers reach it, and it reaches them, on `/sispop/storage/1`.
    pub no_sn_link: bool,
}

impl DevFaults {
    /// Parses `--dev-fault` values.
    pub fn parse(values: &[String]) -> Result<DevFaults, String> {
        let mut f = DevFaults::default();
        for v in values {
            match v.as_str() {
                "no-proofs" => f.no_proofs = true,
                "unreachable" => f.unreachable = true,
                "drop-storage" => f.drop_storage = true,
                "lie-tip" => f.lie_tip = true,
                "no-sn-link" => f.no_sn_link = true,
                other => {
                    return Err(format!(
                    "unknown --dev-fault {other:?} (known: no-proofs, unreachable, drop-storage, lie-tip, no-sn-link)"
                ))
                }
            }
        }
        Ok(f)
    }
}
