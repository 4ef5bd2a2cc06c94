//! Leaving the main chain: popping blocks (kept as side-chain blocks), reorganising onto a
//! heavier side chain (restoring the old chain if the new one fails), and pruning side chains.

use super::*;

/// A block removed from the top of the main chain.
struct Popped {
    hash: BlockHash,
    blob: Vec<u8>,
    /// Its non-coinbase transaction blobs.
    txs: Vec<Vec<u8>>,
}

impl<E: ChainExtension> Blockchain<E> {
    /// Pops the top block; returns its id, blob and its non-coinbase transaction blobs.
    fn pop(&mut self) -> Result<Popped, BlockError> {
        let (height, hash) = self.tip;
        if height.0 == 0 {
            return Err(BlockError::Genesis);
        }
        let (meta, blob) = self
            .store
            .block(&hash)?
            .ok_or_else(|| StoreError::Corrupt {
                cf: "blocks",
                what: "tip block missing".into(),
            })?;
        let (block, stored) = self.stored_block(&blob)?;
        let mut txs = vec![(block.miner_tx.hash(), Vec::new())];
        let mut key_images = Vec::new();
        let mut returned = Vec::new();
        for p in stored {
            key_images.extend(p.tx.key_images());
            txs.push((p.hash, p.blob.clone()));
            returned.push(p.blob);
        }
        let prev_hash = block.header.prev_id;
        let prev_meta = self
            .store
            .block_meta(&prev_hash)?
            .ok_or_else(|| StoreError::Corrupt {
                cf: "blocks",
                what: "parent missing".into(),
            })?;
        // The alt record keeps the block's own transactions (not the miner tx, which is in the blob).
        let alt_txs: Vec<(TxHash, Vec<u8>)> =
            txs.into_iter().filter(|(_, b)| !b.is_empty()).collect();
        let mut all = vec![(block.miner_tx.hash(), Vec::new())];
        all.extend(alt_txs.iter().cloned());
        self.store.pop_block(
            &hash,
            &meta,
            &blob,
            &all,
            &key_images,
            (Height(height.0 - 1), prev_hash),
        )?;
        self.tip = (Height(height.0 - 1), prev_hash);
        self.tip_meta = prev_meta;
        if !self.ext.detach(height, hash, self.tip) {
            self.ext.reset();
            self.sync_extension()?;
        }
        Ok(Popped {
            hash,
            blob,
            txs: returned,
        })
    }

    /// Forgets side-chain blocks more than `max_side_depth` below the tip. A failure is
    /// logged, not returned: the block that led here is applied already, and the next prune
    /// tries again.
    pub(super) fn prune_side_chains(&mut self) {
        let below = self.tip.0 .0.saturating_sub(self.params.max_side_depth);
        match self.store.prune_alt(below) {
            Ok(0) => {}
            Ok(n) => tracing::debug!(
                pruned = n,
                kept = self.store.alt_count(),
                "side-chain blocks pruned"
            ),
            Err(e) => tracing::warn!(error = %e, "side-chain blocks not pruned"),
        }
    }

    /// Switches the main chain to the side chain ending at `new_tip`. On any invalid block the
    /// original chain is restored and the invalid side blocks are forgotten.
    pub(super) fn reorganize(
        &mut self,
        new_tip: BlockHash,
        now: u64,
    ) -> Result<AddOutcome, BlockError> {
        let mut branch = Vec::new();
        let mut cur = new_tip;
        let fork_height = loop {
            if let Some(m) = self.store.block_meta(&cur)? {
                break m.height;
            }
            let alt = self
                .store
                .alt_block(&cur)?
                .ok_or(BlockError::UnknownParent(cur))?;
            let prev = Block::from_bytes(&alt.blob)?.header.prev_id;
            branch.push((cur, alt));
            cur = prev;
        };
        branch.reverse();
        let mut events = Vec::new();
        let mut detached = Vec::new();
        while self.tip.0 > fork_height {
            let p = self.pop()?;
            events.push(ChainEvent::Detached(Height(self.tip.0 .0 + 1), p.hash));
            detached.push((p.blob, p.txs));
        }
        for (i, (hash, alt)) in branch.iter().enumerate() {
            let block = Block::from_bytes(&alt.blob)?;
            match self.apply(&block, &alt.blob, &alt.txs, now, false) {
                Ok(h) => events.push(ChainEvent::Attached(self.tip.0, h)),
                Err(e) => {
                    tracing::warn!(block = %hash, error = %e, "reorg aborted: side-chain block invalid; restoring");
                    for _ in 0..i {
                        self.pop()?;
                    }
                    for (bad, _) in &branch[i..] {
                        self.store.delete_alt_block(bad)?;
                    }
                    for (blob, txs) in detached.iter().rev() {
                        let restored = Block::from_bytes(blob)
                            .map_err(BlockError::from)
                            .and_then(|b| self.apply(&b, blob, txs, now, false));
                        if let Err(again) = restored {
                            // Every pop and apply is one atomic write, so the store is a
                            // consistent, shorter chain; the blocks not restored stay stored
                            // as side-chain blocks and sync brings the chain back.
                            tracing::error!(
                                height = %self.tip.0,
                                tip = %self.tip.1,
                                error = %again,
                                "REORG FAILED AND THE OLD CHAIN COULD NOT BE FULLY RESTORED: \
                                 the node is on a consistent but shorter chain and will sync \
                                 the rest from its peers"
                            );
                            break;
                        }
                    }
                    return Err(e);
                }
            }
        }
        // Transactions of detached blocks that the new chain did not include go back to the pool.
        let returned_txs = detached
            .into_iter()
            .flat_map(|(_, txs)| txs)
            .filter(|b| {
                Transaction::from_bytes(b)
                    .ok()
                    .is_some_and(|t| self.store.tx(&t.hash()).ok().flatten().is_none())
            })
            .collect();
        tracing::info!(height = %self.tip.0, tip = %self.tip.1, "reorganised onto a heavier chain");
        Ok(AddOutcome::Changed {
            events,
            returned_txs,
        })
    }

    /// Removes the top `n` blocks (never genesis), oldest-last, keeping them as side-chain
    /// blocks. Returns the detach events and the popped blocks' transactions for the pool.
    pub fn pop_blocks(&mut self, n: u64) -> Result<(Vec<ChainEvent>, Vec<Vec<u8>>), BlockError> {
        let mut events = Vec::new();
        let mut txs = Vec::new();
        for _ in 0..n {
            if self.tip.0 .0 == 0 {
                break;
            }
            let height = self.tip.0;
            let p = self.pop()?;
            events.push(ChainEvent::Detached(height, p.hash));
            txs.extend(p.txs);
        }
        Ok((events, txs))
    }
}
