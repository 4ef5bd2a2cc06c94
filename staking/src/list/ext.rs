//! The service node list as the chain's extension: the chain asks it to check transactions
//! and blocks, to say what blocks must pay, and tells it of every block attached or detached.

use super::*;

impl ChainExtension for ServiceNodeList {
    fn tip(&self) -> Option<(Height, BlockHash)> {
        self.state.tip
    }

    fn reset(&mut self) {
        self.state = State::default();
        self.history.clear();
    }

    fn check_tx(&self, tx: &Transaction, height: Height) -> Result<(), Rejection> {
        self.check_tx_in(&self.state, tx, height)
    }

    fn check_block_txs(
        &self,
        txs: &[&Transaction],
        height: Height,
    ) -> Result<(), (usize, Rejection)> {
        self.check_in_order(txs, height)
    }

    fn conflict_key(&self, tx: &Transaction) -> Option<[u8; 32]> {
        if tx.tx_type != TxType::StateChange {
            return None;
        }
        let fields = parse_extra(&tx.extra).ok()?;
        let sc = state_change_field(&fields)?;
        let q = self.state.quorum(Height(sc.block_height))?;
        let worker = q
            .workers
            .get(usize::try_from(sc.service_node_index).ok()?)?;
        Some(sispop_chain::crypto::keccak_concat(&[
            b"sispop state change",
            &worker.0,
            &sc.state.to_le_bytes(),
        ]))
    }

    fn payouts(&self, _height: Height, share: Atomic) -> ServiceNodePayout {
        self.state.payouts(share)
    }

    fn attach(&mut self, block: &Block, hash: BlockHash, height: Height, txs: &[BlockTx<'_>]) {
        let mut next = self.state.clone();
        self.apply_block(&mut next, block, hash, height, txs);
        let prev = std::mem::replace(&mut self.state, next);
        self.history.push_back(prev);
        while self.history.len() > STATE_HISTORY {
            self.history.pop_front();
        }
    }

    fn detach(&mut self, height: Height, hash: BlockHash, parent: (Height, BlockHash)) -> bool {
        if self.state.tip != Some((height, hash)) {
            return false;
        }
        match self.history.pop_back() {
            Some(prev) if prev.tip == Some(parent) => {
                self.state = prev;
                true
            }
            _ => false,
        }
    }

    fn snapshot(&self) -> Vec<u8> {
        serde_json::to_vec(&self.state).unwrap_or_default()
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), String> {
        let mut state: State = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        state.rebuild_locked();
        self.state = state;
        self.history.clear();
        Ok(())
    }
}
