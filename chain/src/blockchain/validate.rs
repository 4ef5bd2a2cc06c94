//! Block and transaction validation against the chain: header (version, time, proof of work),
//! miner transaction and rewards, transfers (RingCT, key images, spendable ring members) and
//! the service node extension's rules.

use super::*;

impl<E: ChainExtension> Blockchain<E> {
    /// Header checks that need only ancestry: version, timestamp, PoW. Returns the difficulty.
    pub(super) fn check_header(
        &self,
        block: &Block,
        height: Height,
        now: u64,
    ) -> Result<Difficulty, BlockError> {
        let expected = self.params.hard_fork_at(height);
        if block.header.major_version != expected {
            return Err(BlockError::Version {
                found: block.header.major_version,
                expected,
                height,
            });
        }
        let window = self.params.timestamp_check_window;
        let hist = self.history(block.header.prev_id, window)?;
        if hist.len() >= window {
            let med = median(hist.iter().map(|h| h.0).collect());
            if block.header.timestamp <= med {
                return Err(BlockError::TimestampTooOld(block.header.timestamp, med));
            }
        }
        let limit = now.saturating_add(self.params.future_time_limit);
        if block.header.timestamp > limit {
            return Err(BlockError::TimestampTooNew(block.header.timestamp, limit));
        }
        let difficulty = self.difficulty_after(block.header.prev_id)?;
        let seed = self.seed_for(block.header.prev_id, height)?;
        // Only the seed the main chain needs next uses the main RandomX cache; any other (a
        // side chain's, another epoch's) uses the second, so it cannot evict the main one.
        let key = presig::pow_key(block, &seed);
        let hash = match self.caches.pow(&key) {
            Some(h) => h,
            None => {
                let slot = self.rx_slot(&seed)?;
                pow_hash_in(self.params, block, &seed, slot).map_err(|e| {
                    BlockError::Store(StoreError::Corrupt {
                        cf: "pow",
                        what: e.to_string(),
                    })
                })?
            }
        };
        if !check_pow(&hash, difficulty) {
            return Err(BlockError::Pow(difficulty));
        }
        Ok(difficulty)
    }

    pub(super) fn check_miner_tx(
        &self,
        block: &Block,
        height: Height,
        fees: Atomic,
    ) -> Result<(), BlockError> {
        let tx = &block.miner_tx;
        let bad = |m: &str| Err(BlockError::MinerTx(m.to_owned()));
        if tx.version != 4 || tx.tx_type != TxType::Standard {
            return bad("must be a version 4 standard transaction");
        }
        if block.claimed_height() != Some(height) {
            return bad("Gen input must carry the block height");
        }
        if tx.rct.is_some() {
            return bad("must not carry RingCT data");
        }
        let unlock = height.0 + self.params.coinbase_unlock_window;
        if tx.unlock_time != unlock || tx.output_unlock_times.iter().any(|&t| t != unlock) {
            return bad("outputs must unlock exactly after the coinbase unlock window");
        }
        parse_extra(&tx.extra).map_err(|e| BlockError::MinerTx(e.to_string()))?;
        let mut total = Atomic::ZERO;
        for o in &tx.outputs {
            let Some(a) = o.amount else {
                return bad("outputs must have plaintext amounts");
            };
            total = total
                .checked_add(Atomic(a))
                .ok_or_else(|| BlockError::MinerTx("output sum overflows".into()))?;
        }
        let split = self.params.reward_split(self.params.hard_fork_at(height));
        let plan = self.ext.payouts(height, split.service_nodes);
        let fields = parse_extra(&tx.extra).map_err(|e| BlockError::MinerTx(e.to_string()))?;
        let named = fields.iter().find_map(|f| match f {
            ExtraField::Winner(k) => Some(*k),
            _ => None,
        });
        let expected = plan.leader.unwrap_or(crate::types::PublicKey([0; 32]));
        if named != Some(expected) {
            return Err(BlockError::MinerTx(format!(
                "must name reward leader {expected}"
            )));
        }
        if tx.outputs.len() != 1 + plan.payouts.len() {
            return Err(BlockError::MinerTx(format!(
                "must have 1 + {} outputs",
                plan.payouts.len()
            )));
        }
        for (i, (addr, amount)) in plan.payouts.iter().enumerate() {
            let out = &tx.outputs[i + 1];
            let key = crate::reward::payout_output_key(height, i as u64 + 1, addr)
                .ok_or_else(|| BlockError::MinerTx("payout address has invalid keys".into()))?;
            if out.amount != Some(amount.0) || out.key.to_bytes() != key.0 {
                return Err(BlockError::MinerTx(format!(
                    "output {} must pay {} to the reward leader's contributor",
                    i + 1,
                    amount
                )));
            }
        }
        let miner_paid = Atomic(tx.outputs.first().and_then(|o| o.amount).unwrap_or(0));
        let max = max_miner_payout(self.params, height, fees)
            .ok_or_else(|| BlockError::MinerTx("reward overflows".into()))?;
        if miner_paid > max {
            return Err(BlockError::MinerTx(format!(
                "pays the miner {miner_paid}, more than the allowed {max}"
            )));
        }
        debug_assert!(total >= miner_paid);
        Ok(())
    }

    /// Whether output `index` can be spent in a block at `height`.
    pub(super) fn output_spendable(&self, out: &OutputRecord, height: Height) -> bool {
        if height.0 < out.height.0.saturating_add(self.params.spendable_age) {
            return false;
        }
        if out.unlock_time < UNLOCK_TIME_IS_TIMESTAMP {
            height.0 >= out.unlock_time
        } else {
            self.tip_meta
                .timestamp
                .saturating_add(self.params.target_block_time)
                >= out.unlock_time
        }
    }

    /// What a transaction claims exclusively: its key images, and the extension's conflict key
    /// (as a pseudo key image).
    pub fn claims(&self, tx: &Transaction) -> Vec<KeyImage> {
        let mut v = tx.key_images();
        v.extend(self.ext.conflict_key(tx).map(KeyImage));
        v
    }

    /// Validates a transaction for inclusion at `height` (the next block), with `taken` the key
    /// images already used by the surrounding block or pool.
    pub fn validate_tx(
        &self,
        tx: &Transaction,
        blob_len: usize,
        height: Height,
        taken: &HashSet<KeyImage>,
    ) -> Result<(), TxError> {
        self.validate_tx_alone(tx, blob_len, height, taken)?;
        self.ext.check_tx(tx, height).map_err(rejection_error)
    }

    /// [`Blockchain::validate_tx`] without the extension's state checks, which a block runs
    /// over all its transactions in order ([`ChainExtension::check_block_txs`]).
    pub(super) fn validate_tx_alone(
        &self,
        tx: &Transaction,
        blob_len: usize,
        height: Height,
        taken: &HashSet<KeyImage>,
    ) -> Result<(), TxError> {
        if blob_len > self.params.max_tx_size {
            return Err(TxError::TooLarge(blob_len, self.params.max_tx_size));
        }
        if tx.version != 4 {
            return Err(TxError::Version(tx.version));
        }
        parse_extra(&tx.extra)?;
        match tx.tx_type {
            TxType::Standard | TxType::Stake => {
                self.validate_transfer(tx, blob_len, height, taken)?
            }
            TxType::KeyImageUnlock | TxType::StateChange => {
                if self
                    .ext
                    .conflict_key(tx)
                    .is_some_and(|k| taken.contains(&KeyImage(k)))
                {
                    return Err(TxError::NotApplicable(
                        "another transaction already changes this service node to this state"
                            .into(),
                    ));
                }
                if !tx.inputs.is_empty()
                    || !tx.outputs.is_empty()
                    || tx.rct.is_some()
                    || tx.unlock_time != 0
                {
                    return Err(TxError::Malformed(
                        "state change and unlock transactions have no inputs, outputs or fee",
                    ));
                }
            }
            TxType::NameSystem => return Err(TxError::TypeNotAccepted(tx.tx_type)),
        }
        Ok(())
    }

    /// RingCT checks of a transfer (standard or stake).
    pub(super) fn validate_transfer(
        &self,
        tx: &Transaction,
        blob_len: usize,
        height: Height,
        taken: &HashSet<KeyImage>,
    ) -> Result<(), TxError> {
        let rings = self.transfer_rings(tx, blob_len, height, taken)?;
        // Range proof, ring signatures and balance: unless already verified against these
        // very rings without the chain's lock (see `presig`).
        let key = presig::sig_key(&tx.hash(), &rings);
        if self.caches.sig_verified(&key) {
            return Ok(());
        }
        presig::verify_rct(tx, rings)?;
        self.caches.note_sig(key);
        Ok(())
    }

    /// The cheap checks of a transfer (structure, fee, key images, ring size and members),
    /// returning its rings for the expensive ones.
    pub(super) fn transfer_rings(
        &self,
        tx: &Transaction,
        blob_len: usize,
        height: Height,
        taken: &HashSet<KeyImage>,
    ) -> Result<Vec<presig::Ring>, TxError> {
        if tx.inputs.is_empty() || tx.is_coinbase() {
            return Err(TxError::Malformed("a transfer needs ring inputs"));
        }
        if tx.outputs.is_empty() {
            return Err(TxError::Malformed("a transfer needs outputs"));
        }
        if tx.outputs.iter().any(|o| o.amount.is_some()) {
            return Err(TxError::Malformed("RingCT outputs must not show amounts"));
        }
        let rct = tx
            .rct
            .as_ref()
            .ok_or(TxError::Malformed("missing RingCT data"))?;
        if rct.rct_type() != RctType::ClsagBulletproofPlus {
            return Err(TxError::Malformed(
                "RingCT type must be CLSAG with Bulletproofs+",
            ));
        }
        if rct
            .base
            .encrypted_amounts
            .iter()
            .any(|e| !matches!(e, EncryptedAmount::Compact { .. }))
        {
            return Err(TxError::Malformed("amounts must use the compact encoding"));
        }
        let min = self.params.min_fee(blob_len).0;
        if rct.base.fee < min {
            return Err(TxError::FeeTooLow {
                fee: rct.base.fee,
                min,
                size: blob_len,
            });
        }
        let RctPrunable::Clsag {
            clsags,
            pseudo_outs,
            ..
        } = &rct.prunable
        else {
            return Err(TxError::Malformed(
                "RingCT type must be CLSAG with Bulletproofs+",
            ));
        };
        if clsags.len() != tx.inputs.len() || pseudo_outs.len() != tx.inputs.len() {
            return Err(TxError::Malformed(
                "one CLSAG and pseudo-output per input required",
            ));
        }

        // Key images and rings.
        let mut seen = HashSet::new();
        let mut rings = Vec::with_capacity(tx.inputs.len());
        for input in &tx.inputs {
            let Input::ToKey {
                amount,
                key_offsets,
                key_image,
            } = input
            else {
                return Err(TxError::Malformed("a transfer needs ring inputs"));
            };
            if amount.is_some() {
                return Err(TxError::Malformed("RingCT inputs must not show amounts"));
            }
            let ki = KeyImage(key_image.to_bytes());
            if !key_image_is_valid(&ki) {
                return Err(TxError::BadKeyImage(ki));
            }
            if !seen.insert(ki) || taken.contains(&ki) {
                return Err(TxError::DoubleSpend(ki));
            }
            if self.store.key_image_spent(&ki)? {
                return Err(TxError::Spent(ki));
            }
            if key_offsets.len() != self.params.ring_size {
                return Err(TxError::RingSize(key_offsets.len(), self.params.ring_size));
            }
            rings.push(self.ring_members(key_offsets, Some(height))?);
        }
        Ok(rings)
    }

    pub(super) fn prepare_txs(
        &self,
        block: &Block,
        tx_blobs: &[Vec<u8>],
    ) -> Result<Vec<PreparedTx>, BlockError> {
        if block.tx_hashes.len() > self.params.max_block_txs {
            return Err(BlockError::TxList(format!(
                "{} transactions, limit {}",
                block.tx_hashes.len(),
                self.params.max_block_txs
            )));
        }
        let mut unique = HashSet::new();
        if !block.tx_hashes.iter().all(|h| unique.insert(*h)) {
            return Err(BlockError::TxList("duplicate transaction".into()));
        }
        // By hash, so putting them in the block's order is linear (a search of the list per
        // hash would be quadratic in a block of 10,000).
        let mut prepared = std::collections::HashMap::with_capacity(tx_blobs.len());
        for blob in tx_blobs {
            let tx = Transaction::from_bytes(blob).map_err(|e| {
                BlockError::TxList(format!("supplied transaction does not decode: {e}"))
            })?;
            let hash = tx.hash();
            prepared.insert(
                hash,
                PreparedTx {
                    hash,
                    tx,
                    blob: blob.clone(),
                },
            );
        }
        block
            .tx_hashes
            .iter()
            .map(|h| prepared.remove(h).ok_or(BlockError::MissingTx(*h)))
            .collect()
    }
}

/// The transaction error of an extension's refusal.
pub(super) fn rejection_error(r: crate::extension::Rejection) -> TxError {
    if r.peer_fault {
        TxError::Rejected(r.reason)
    } else {
        TxError::NotApplicable(r.reason)
    }
}
