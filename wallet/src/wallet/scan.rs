//! Scanning: walking the chain from the cached height, noticing reorgs (by hash at the tip
//! and by `prev_id` linkage while scanning), finding owned outputs and their spends.

use std::collections::{BTreeSet, HashSet};

use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::Scalar;
use monero_oxide::ringct::EncryptedAmount;
use serde_json::{json, Value};
use sispop_chain::crypto::{
    commit, commitment_mask, derivation_to_scalar, hash_to_point, key_derivation, xor_amount,
};
use sispop_chain::extra::{parse_extra, ExtraField};
use sispop_chain::{Block, BlockHash, KeyImage, PublicKey, Transaction, TxHash};

use super::{field, hex_scalar, release_missing, OwnedOutput, Wallet, WalletError, KEEP_HASHES};
use crate::daemon::Daemon;

impl Wallet {
    /// Scans new blocks (handling reorgs) up to the daemon's tip. Returns the height scanned to.
    pub async fn refresh(&mut self, daemon: &Daemon) -> Result<u64, WalletError> {
        self.refresh_with_progress(daemon, |_, _| {}).await
    }

    /// [`Wallet::refresh`], calling `progress(next height, chain height)` after each block.
    pub async fn refresh_with_progress(
        &mut self,
        daemon: &Daemon,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<u64, WalletError> {
        let info = daemon.call("get_info", json!({})).await?;
        let count = field(&info, "height")?
            .as_u64()
            .ok_or_else(|| WalletError::Answer("height".into()))?;
        // A block that does not link to the one scanned before it (a reorg under us while
        // scanning) sends us back to the walk-back; bounded, as a daemon could keep lying.
        for _ in 0..8 {
            if self.catch_up(daemon, count, &mut progress).await? {
                break;
            }
        }
        let cut = self.cache.next_height.saturating_sub(KEEP_HASHES);
        self.cache.hashes.retain(|h, _| *h >= cut);
        self.release_dropped(daemon).await?;
        Ok(self.cache.next_height)
    }

    /// Walks back past blocks the chain no longer has, then scans up to `count`. False when a
    /// block did not link to its predecessor (the walk-back must run again).
    async fn catch_up(
        &mut self,
        daemon: &Daemon,
        count: u64,
        progress: &mut impl FnMut(u64, u64),
    ) -> Result<bool, WalletError> {
        // Reorg: walk back while our recorded hash differs from the chain's.
        while self.cache.next_height > 0 {
            let h = self.cache.next_height - 1;
            let Some(ours) = self.cache.hashes.get(&h).copied() else {
                break;
            };
            if h < count {
                let hdr = daemon
                    .call("get_block_header_by_height", json!({"height": h}))
                    .await?;
                let theirs = hdr["block_header"]["hash"]
                    .as_str()
                    .and_then(BlockHash::from_hex);
                if theirs == Some(ours) {
                    break;
                }
            }
            self.rollback(h);
        }
        for h in self.cache.next_height..count {
            if !self.scan_block(daemon, h).await? {
                // Our block h-1 is gone: forget it and walk back from there.
                self.rollback(h.saturating_sub(1));
                return Ok(false);
            }
            self.cache.next_height = h + 1;
            progress(h + 1, count);
        }
        Ok(true)
    }

    /// Spends this wallet sent that are neither in the pool nor in the chain any more (the pool
    /// dropped them unmined) give their outputs back.
    async fn release_dropped(&mut self, daemon: &Daemon) -> Result<usize, WalletError> {
        let pending: Vec<String> = self
            .cache
            .outputs
            .iter()
            .filter(|o| o.spent_height.is_none())
            .filter_map(|o| o.spent_in.map(|h| h.to_hex()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut gone = HashSet::new();
        for chunk in pending.chunks(100) {
            let r = daemon
                .call("get_transactions", json!({"txs_hashes": chunk}))
                .await?;
            gone.extend(
                r["missed_tx"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|h| h.as_str().and_then(TxHash::from_hex)),
            );
        }
        Ok(release_missing(&mut self.cache, &gone))
    }

    /// Forgets everything from `height` on.
    fn rollback(&mut self, height: u64) {
        self.cache.outputs.retain(|o| o.height < height);
        for o in &mut self.cache.outputs {
            if o.spent_height.is_some_and(|h| h >= height) {
                o.spent_in = None;
                o.spent_height = None;
            }
        }
        self.cache.hashes.retain(|h, _| *h < height);
        self.cache.next_height = height;
    }

    /// Scans block `height`; false (nothing changed) when it does not link to the block this
    /// wallet scanned below it.
    async fn scan_block(&mut self, daemon: &Daemon, height: u64) -> Result<bool, WalletError> {
        let b = daemon.call("get_block", json!({"height": height})).await?;
        let blob = hex::decode(field(&b, "blob")?.as_str().unwrap_or(""))
            .map_err(|_| WalletError::Answer("block blob".into()))?;
        let block = Block::from_bytes(&blob).map_err(|e| WalletError::Answer(e.to_string()))?;
        if let Some(prev) = height
            .checked_sub(1)
            .and_then(|p| self.cache.hashes.get(&p))
        {
            if block.header.prev_id != *prev {
                return Ok(false);
            }
        }
        let mut hashes = vec![block.miner_tx.hash()];
        hashes.extend(block.tx_hashes.iter().copied());
        let t = daemon
            .call(
                "get_transactions",
                json!({"txs_hashes": hashes.iter().map(|h| h.to_hex()).collect::<Vec<_>>()}),
            )
            .await?;
        // Match answers to the block's transactions by id (a daemon may answer some as
        // missed), and check each blob really is the transaction asked for.
        let txs = field(&t, "txs")?.as_array().cloned().unwrap_or_default();
        let by_hash: std::collections::HashMap<&str, &Value> = txs
            .iter()
            .filter_map(|e| e["tx_hash"].as_str().map(|h| (h, e)))
            .collect();
        for (i, hash) in hashes.iter().enumerate() {
            let hex_hash = hash.to_hex();
            let entry = by_hash.get(hex_hash.as_str()).ok_or_else(|| {
                WalletError::Answer(format!(
                    "daemon did not return transaction {hash} of block {height}"
                ))
            })?;
            let tx = if i == 0 {
                block.miner_tx.clone()
            } else {
                let blob = hex::decode(entry["as_hex"].as_str().unwrap_or(""))
                    .map_err(|_| WalletError::Answer(format!("transaction {hash} is not hex")))?;
                let tx = Transaction::from_bytes(&blob)
                    .map_err(|e| WalletError::Answer(format!("transaction {hash}: {e}")))?;
                if tx.hash() != *hash {
                    return Err(WalletError::Answer(format!(
                        "daemon returned another transaction for {hash}"
                    )));
                }
                tx
            };
            let indices: Vec<u64> = entry["output_indices"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_u64()).collect())
                .unwrap_or_default();
            if indices.len() != tx.outputs.len() {
                return Err(WalletError::Answer(format!(
                    "daemon gave {} output indices for {} outputs of {hash}",
                    indices.len(),
                    tx.outputs.len()
                )));
            }
            self.scan_tx(&tx, *hash, height, &indices);
        }
        self.cache.hashes.insert(height, block.hash());
        Ok(true)
    }

    /// Finds owned outputs and spends of owned outputs in one transaction.
    pub fn scan_tx(
        &mut self,
        tx: &Transaction,
        tx_hash: TxHash,
        height: u64,
        global_indices: &[u64],
    ) {
        let spent: HashSet<KeyImage> = tx.key_images().into_iter().collect();
        for o in &mut self.cache.outputs {
            if spent.contains(&o.key_image) {
                o.spent_in = Some(tx_hash);
                o.spent_height = Some(height);
            }
        }
        let Ok(fields) = parse_extra(&tx.extra) else {
            return;
        };
        let mut pubkeys = Vec::new();
        let mut additional = Vec::new();
        for f in &fields {
            match f {
                ExtraField::PubKey(k) => pubkeys.push(*k),
                ExtraField::AdditionalPubKeys(ks) => additional.extend(ks.iter().copied()),
                _ => {}
            }
        }
        let derivations: Vec<[u8; 32]> = pubkeys
            .iter()
            .filter_map(|r| key_derivation(&self.account.view, r))
            .collect();
        let spend_pub = self.account.address().spend;
        let Some(b) = sispop_chain::crypto::decompress(&spend_pub) else {
            return;
        };
        for (i, out) in tx.outputs.iter().enumerate() {
            let mut candidates = derivations.clone();
            if let Some(d) = additional
                .get(i)
                .and_then(|r| key_derivation(&self.account.view, r))
            {
                candidates.push(d);
            }
            for d in candidates {
                let s = derivation_to_scalar(&d, i as u64);
                let p = EdwardsPoint::mul_base(&s) + b;
                if p.compress().to_bytes() != out.key.to_bytes() {
                    continue;
                }
                let (amount, mask) = match out.amount {
                    Some(a) => (a, Scalar::ONE),
                    None => {
                        let Some(rct) = &tx.rct else { break };
                        let (Some(EncryptedAmount::Compact { amount }), Some(c)) = (
                            rct.base.encrypted_amounts.get(i),
                            rct.base.commitments.get(i),
                        ) else {
                            break;
                        };
                        let a = u64::from_le_bytes(xor_amount(*amount, &s));
                        let mask = commitment_mask(&s);
                        if commit(&mask, a) != c.to_bytes() {
                            break;
                        }
                        (a, mask)
                    }
                };
                let x = s + self.account.spend;
                let key = PublicKey(out.key.to_bytes());
                let key_image = KeyImage((x * hash_to_point(key.0)).compress().to_bytes());
                if self.cache.outputs.iter().any(|o| o.key_image == key_image) {
                    break;
                }
                let unlock = tx
                    .output_unlock_times
                    .get(i)
                    .copied()
                    .unwrap_or(0)
                    .max(tx.unlock_time);
                self.cache.outputs.push(OwnedOutput {
                    global_index: global_indices.get(i).copied().unwrap_or(u64::MAX),
                    tx_hash,
                    height,
                    index_in_tx: i as u64,
                    amount,
                    mask: hex_scalar(&mask),
                    shared: hex_scalar(&s),
                    key,
                    key_image,
                    unlock_time: unlock,
                    spent_in: None,
                    spent_height: None,
                });
                break;
            }
        }
    }
}
