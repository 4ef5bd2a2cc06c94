//! The wallet engine: scanning the chain for owned outputs and their spends, balances, and
//! building transfers and staking transactions with decoys drawn from the chain.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use curve25519_dalek::Scalar;

use rand::seq::IteratorRandom;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sispop_chain::builder::{build_transfer, SpendInput};
use sispop_chain::crypto::scalar_from_canonical;
use sispop_chain::{
    Address, Atomic, BlockHash, KeyImage, NetworkParams, PublicKey, Transaction, TxHash, TxType,
};
use sispop_staking::build::{build_stake_tx, build_unlock_tx};
use sispop_staking::command::parse_command;

use crate::daemon::{Daemon, DaemonError};
use crate::decoys::DecoyPicker;
use crate::keys::Account;
use crate::seal::Keys;

mod scan;

/// How many recent block hashes are kept to notice reorgs.
const KEEP_HASHES: u64 = 200;

/// Wallet failures.
#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    /// The daemon failed.
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    /// The daemon answered something unusable.
    #[error("unexpected daemon answer: {0}")]
    Answer(String),
    /// Not enough unlocked money.
    #[error("not enough unlocked money: need {need}, have {have} unlocked")]
    Funds {
        /// Needed (amount + fee).
        need: Atomic,
        /// Unlocked balance.
        have: Atomic,
    },
    /// Not enough outputs on chain to build rings.
    #[error("the chain has too few spendable outputs to build rings of {0}")]
    Decoys(usize),
    /// Building failed.
    #[error("building the transaction failed: {0}")]
    Build(String),
    /// The daemon refused the transaction.
    #[error("the daemon refused the transaction: {0}")]
    Refused(String),
    /// Bad user input.
    #[error("{0}")]
    Usage(String),
    /// The cache file.
    #[error("wallet cache {0}: {1}")]
    Cache(String, String),
    /// The keys file.
    #[error(transparent)]
    File(#[from] crate::keys::WalletFileError),
}

/// An output the wallet owns.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct OwnedOutput {
    /// Global output index.
    pub global_index: u64,
    /// Creating transaction.
    pub tx_hash: TxHash,
    /// Height of the block that created it.
    pub height: u64,
    /// Index within its transaction.
    pub index_in_tx: u64,
    /// Amount.
    pub amount: u64,
    /// Commitment mask (hex scalar).
    pub mask: String,
    /// Hs(D ‖ i) (hex scalar); the one-time secret is this plus the spend secret.
    pub shared: String,
    /// One-time key.
    pub key: PublicKey,
    /// Key image.
    pub key_image: KeyImage,
    /// Unlock time (height below 500,000,000).
    pub unlock_time: u64,
    /// Spending transaction, once seen or sent.
    pub spent_in: Option<TxHash>,
    /// Height the spend was mined at (None while pending).
    pub spent_height: Option<u64>,
}

/// The sorted output indices of one `get_outs` request while building a ring: fresh decoy
/// candidates, plus the real output when `with_real` (the first request), so the real one is
/// only ever asked for among many.
pub fn ring_request(
    picks: impl Iterator<Item = u64>,
    real: u64,
    with_real: bool,
    have: &BTreeMap<u64, ([u8; 32], [u8; 32])>,
) -> Vec<u64> {
    let mut want: BTreeSet<u64> = picks
        .filter(|i| *i != real && !have.contains_key(i))
        .collect();
    if with_real {
        want.insert(real);
    }
    want.into_iter().collect()
}

/// Gives back the outputs whose pending spend is in `gone` (no longer in the pool or chain).
pub fn release_missing(cache: &mut WalletCache, gone: &HashSet<TxHash>) -> usize {
    let mut n = 0;
    for o in &mut cache.outputs {
        if o.spent_height.is_none() && o.spent_in.is_some_and(|h| gone.contains(&h)) {
            o.spent_in = None;
            n += 1;
        }
    }
    n
}

/// The most a daemon's fee estimate may exceed the network's default before the wallet refuses
/// it (a hostile daemon could otherwise spend the balance on fees).
pub const MAX_FEE_FACTOR: u64 = 10;

/// The fee per byte to use: the daemon's estimate, refused above [`MAX_FEE_FACTOR`] times the
/// network's default.
pub fn checked_fee_per_byte(estimate: Option<u64>, default: u64) -> Result<u64, WalletError> {
    let per_byte = estimate.unwrap_or(default);
    if per_byte > default.saturating_mul(MAX_FEE_FACTOR) {
        return Err(WalletError::Answer(format!(
            "the daemon asks {per_byte} per byte, more than {MAX_FEE_FACTOR} times the \
             network's {default}; refusing"
        )));
    }
    Ok(per_byte)
}

/// What the wallet remembers between runs (beside the keys file).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct WalletCache {
    /// Next height to scan.
    pub next_height: u64,
    /// Recent block hashes by height.
    pub hashes: BTreeMap<u64, BlockHash>,
    /// Owned outputs.
    pub outputs: Vec<OwnedOutput>,
}

/// Balance summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Balance {
    /// All unspent coins (including locked and staked).
    pub total: Atomic,
    /// Spendable now.
    pub unlocked: Atomic,
    /// Locked as service node stakes (or blacklisted).
    pub staked: Atomic,
}

/// A wallet: keys, cache, network.
pub struct Wallet {
    /// Keys.
    pub account: Account,
    /// Network.
    pub params: &'static NetworkParams,
    /// Cached chain state.
    pub cache: WalletCache,
    cache_path: Option<PathBuf>,
    /// Seals the cache file (derived from the password).
    seal: Option<Keys>,
}

fn hex_scalar(s: &Scalar) -> String {
    hex::encode(s.as_bytes())
}

fn scalar_hex(s: &str) -> Result<Scalar, WalletError> {
    let mut b = [0u8; 32];
    hex::decode_to_slice(s, &mut b)
        .map_err(|_| WalletError::Cache("outputs".into(), "bad scalar".into()))?;
    scalar_from_canonical(b)
        .ok_or_else(|| WalletError::Cache("outputs".into(), "bad scalar".into()))
}

fn field<'a>(v: &'a serde_json::Value, k: &str) -> Result<&'a serde_json::Value, WalletError> {
    v.get(k)
        .ok_or_else(|| WalletError::Answer(format!("missing {k}")))
}

impl Wallet {
    /// A wallet with an empty cache.
    pub fn new(account: Account, params: &'static NetworkParams) -> Wallet {
        Wallet {
            account,
            params,
            cache: WalletCache::default(),
            cache_path: None,
            seal: None,
        }
    }

    /// Opens the wallet file `keys_file` with its password, and its scan cache.
    pub fn open(keys_file: &Path, password: &[u8]) -> Result<Wallet, WalletError> {
        let u = crate::keys::WalletFile::load(keys_file, password)?;
        Wallet::new(u.account, u.params).with_cache_file(keys_file, u.keys)
    }

    /// Changes the password of a wallet file and re-seals its cache under it.
    pub fn change_password(keys_file: &Path, old: &[u8], new: &[u8]) -> Result<(), WalletError> {
        let mut w = Wallet::open(keys_file, old)?;
        w.seal = Some(crate::keys::WalletFile::change_password(
            keys_file, old, new,
        )?);
        w.save()
    }

    /// Opens the cache stored next to the keys file (`<file>.cache`), if present; `keys` (from
    /// the keys file's password) seal it. A cache from before encryption is read in clear and
    /// sealed at the next save.
    pub fn with_cache_file(mut self, keys_file: &Path, keys: Keys) -> Result<Wallet, WalletError> {
        let path = PathBuf::from(format!("{}.cache", keys_file.display()));
        let bad = |e: String| WalletError::Cache(path.display().to_string(), e);
        self.cache.next_height = crate::keys::WalletFile::restore_height(keys_file).unwrap_or(0);
        if path.exists() {
            let bytes = std::fs::read(&path).map_err(|e| bad(e.to_string()))?;
            let plain = if bytes.starts_with(b"{") {
                Ok(bytes)
            } else {
                keys.open_cache(&bytes).map_err(|e| e.to_string())
            };
            match plain.and_then(|p| serde_json::from_slice(&p).map_err(|e| e.to_string())) {
                Ok(cache) => self.cache = cache,
                // The cache is only what the chain says: a damaged one (or one a crash left
                // sealed under another password) is rebuilt by scanning again.
                Err(e) => eprintln!(
                    "wallet cache {} cannot be used ({e}); rescanning from height {}",
                    path.display(),
                    self.cache.next_height
                ),
            }
        }
        self.cache_path = Some(path);
        self.seal = Some(keys);
        Ok(self)
    }

    /// Saves the cache (atomically, sealed).
    pub fn save(&self) -> Result<(), WalletError> {
        let (Some(path), Some(seal)) = (&self.cache_path, &self.seal) else {
            return Ok(());
        };
        let text = serde_json::to_vec(&self.cache)
            .map_err(|e| WalletError::Cache(path.display().to_string(), e.to_string()))?;
        let sealed = seal.seal_cache(&text);
        let tmp = path.with_extension("tmp");
        crate::keys::write_private(&tmp, &sealed)
            .map_err(|e| WalletError::Cache(path.display().to_string(), e.to_string()))?;
        std::fs::rename(&tmp, path)
            .map_err(|e| WalletError::Cache(path.display().to_string(), e.to_string()))
    }

    /// The primary address.
    pub fn address(&self) -> Address {
        self.account.address()
    }

    /// Key images locked as stakes or blacklisted, from the daemon.
    pub async fn locked_key_images(
        &self,
        daemon: &Daemon,
    ) -> Result<BTreeMap<KeyImage, String>, WalletError> {
        let v = daemon.call("get_service_nodes", json!({})).await?;
        let mut out = BTreeMap::new();
        for n in v["service_node_states"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let pk = n["service_node_pubkey"].as_str().unwrap_or("").to_owned();
            for c in n["contributors"].as_array().cloned().unwrap_or_default() {
                for l in c["locked_contributions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                {
                    if let Some(ki) = l["key_image"].as_str().and_then(KeyImage::from_hex) {
                        out.insert(ki, pk.clone());
                    }
                }
            }
        }
        let bl = daemon
            .call("get_service_node_blacklisted_key_images", json!({}))
            .await?;
        for b in bl["blacklist"].as_array().cloned().unwrap_or_default() {
            if let Some(ki) = b["key_image"].as_str().and_then(KeyImage::from_hex) {
                out.insert(ki, "blacklisted".into());
            }
        }
        Ok(out)
    }

    fn spendable(&self, o: &OwnedOutput, next_height: u64) -> bool {
        o.spent_in.is_none()
            && next_height >= o.height + self.params.spendable_age
            && (o.unlock_time >= sispop_chain::blockchain::UNLOCK_TIME_IS_TIMESTAMP
                || next_height >= o.unlock_time)
    }

    /// The balance, given the key images the network holds locked.
    pub fn balance(&self, locked: &BTreeMap<KeyImage, String>) -> Balance {
        let next = self.cache.next_height;
        let mut b = Balance::default();
        for o in self.cache.outputs.iter().filter(|o| o.spent_in.is_none()) {
            b.total = Atomic(b.total.0 + o.amount);
            if locked.contains_key(&o.key_image) {
                b.staked = Atomic(b.staked.0 + o.amount);
            } else if self.spendable(o, next) {
                b.unlocked = Atomic(b.unlocked.0 + o.amount);
            }
        }
        b
    }

    /// Picks unlocked outputs worth at least `need`, largest first.
    fn select(
        &self,
        need: u64,
        locked: &BTreeMap<KeyImage, String>,
    ) -> Result<Vec<OwnedOutput>, WalletError> {
        let next = self.cache.next_height;
        let mut pool: Vec<&OwnedOutput> = self
            .cache
            .outputs
            .iter()
            .filter(|o| self.spendable(o, next) && !locked.contains_key(&o.key_image))
            .collect();
        pool.sort_by_key(|o| std::cmp::Reverse(o.amount));
        let mut picked = Vec::new();
        let mut sum = 0u64;
        for o in pool {
            if sum >= need {
                break;
            }
            sum = sum.saturating_add(o.amount);
            picked.push(o.clone());
        }
        if sum < need {
            return Err(WalletError::Funds {
                need: Atomic(need),
                have: self.balance(locked).unlocked,
            });
        }
        Ok(picked)
    }

    /// Ring inputs for `outputs`: each with `ring_size − 1` distinct unlocked decoys drawn
    /// uniformly from the chain's outputs.
    async fn ring_inputs(
        &self,
        daemon: &Daemon,
        outputs: &[OwnedOutput],
    ) -> Result<Vec<SpendInput>, WalletError> {
        let dist = daemon
            .call(
                "get_output_distribution",
                json!({"amounts": [0], "from_height": 0, "cumulative": true}),
            )
            .await?;
        let cumulative: Vec<u64> = dist["distributions"][0]["distribution"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        let picker = DecoyPicker::new(
            cumulative,
            self.params.target_block_time,
            self.params.spendable_age,
        )
        .ok_or(WalletError::Decoys(self.params.ring_size))?;
        let n = self.params.ring_size;
        if picker.total() < n as u64 {
            return Err(WalletError::Decoys(n));
        }
        let mut inputs = Vec::with_capacity(outputs.len());
        for o in outputs {
            // Unlocked candidates the daemon gave; the decoys are drawn from them at random.
            let mut candidates: BTreeMap<u64, ([u8; 32], [u8; 32])> = BTreeMap::new();
            let mut real = None;
            let mut tries = 0;
            while candidates.len() < n - 1 || real.is_none() {
                tries += 1;
                if tries > 50 {
                    return Err(WalletError::Decoys(n));
                }
                let picks = (0..2 * n).map(|_| picker.pick(&mut rand::rngs::OsRng));
                // The real output is fetched once, hidden among the first batch of candidates,
                // so the daemon cannot tell it from the decoys.
                let want = ring_request(picks, o.global_index, real.is_none(), &candidates);
                let outs = daemon.call("get_outs", json!({"outputs": want.iter().map(|i| json!({"amount": 0, "index": i})).collect::<Vec<_>>()})).await?;
                for (i, e) in want
                    .iter()
                    .zip(outs["outs"].as_array().cloned().unwrap_or_default())
                {
                    let (Some(k), Some(m)) = (
                        e["key"].as_str().and_then(PublicKey::from_hex),
                        e["mask"].as_str().and_then(PublicKey::from_hex),
                    ) else {
                        continue;
                    };
                    if *i == o.global_index {
                        if k != o.key {
                            return Err(WalletError::Answer(
                                "own output key differs on chain; refresh the wallet".into(),
                            ));
                        }
                        real = Some((k.0, m.0));
                        continue;
                    }
                    if e["unlocked"].as_bool().unwrap_or(false) {
                        candidates.insert(*i, (k.0, m.0));
                    }
                }
                if real.is_none() {
                    // It was in this (first) request and the daemon did not give it.
                    return Err(WalletError::Answer("own output missing on chain".into()));
                }
            }
            let Some(real) = real else {
                return Err(WalletError::Answer("own output missing on chain".into()));
            };
            let mut members: BTreeMap<u64, ([u8; 32], [u8; 32])> = candidates
                .into_iter()
                .choose_multiple(&mut rand::rngs::OsRng, n - 1)
                .into_iter()
                .collect();
            members.insert(o.global_index, real);
            let ring: Vec<(u64, [u8; 32], [u8; 32])> =
                members.iter().map(|(i, (k, m))| (*i, *k, *m)).collect();
            let real_index = ring
                .iter()
                .position(|(i, _, _)| *i == o.global_index)
                .unwrap_or(0);
            inputs.push(SpendInput {
                secret: scalar_hex(&o.shared)? + self.account.spend,
                amount: o.amount,
                mask: scalar_hex(&o.mask)?,
                ring,
                real_index,
            });
        }
        Ok(inputs)
    }

    async fn fee_per_byte(&self, daemon: &Daemon) -> Result<u64, WalletError> {
        let estimate = daemon.call("get_fee_estimate", json!({})).await?["fee_per_byte"].as_u64();
        checked_fee_per_byte(estimate, self.params.fee_per_byte)
    }

    /// Estimated blob size of a CLSAG/BP+ transaction.
    fn estimate_size(inputs: usize, outputs: usize, extra: usize) -> u64 {
        (200 + inputs * (32 * 12 + 64 + self_ring_overhead()) + outputs * 80 + 700 + extra) as u64
    }

    async fn submit(
        &mut self,
        daemon: &Daemon,
        tx: &Transaction,
        spent: &[OwnedOutput],
    ) -> Result<TxHash, WalletError> {
        let r = daemon
            .call(
                "send_raw_transaction",
                json!({"tx_as_hex": hex::encode(tx.serialize())}),
            )
            .await?;
        if r["status"].as_str() != Some("OK") {
            return Err(WalletError::Refused(
                r["reason"].as_str().unwrap_or("unknown reason").to_owned(),
            ));
        }
        let hash = tx.hash();
        for o in &mut self.cache.outputs {
            if spent.iter().any(|s| s.key_image == o.key_image) {
                o.spent_in = Some(hash);
            }
        }
        self.save()?;
        Ok(hash)
    }

    /// Unlocked, unstaked outputs covering `amount` plus the fee their transaction will need
    /// (fee per byte × estimated size, re-estimated as inputs are added).
    async fn choose_inputs(
        &self,
        daemon: &Daemon,
        amount: u64,
        extra_bytes: usize,
    ) -> Result<(Vec<OwnedOutput>, u64), WalletError> {
        let locked = self.locked_key_images(daemon).await?;
        let per_byte = self.fee_per_byte(daemon).await?;
        let too_much = || WalletError::Build("the amount and fee overflow".into());
        let mut fee = per_byte
            .checked_mul(Self::estimate_size(1, 2, extra_bytes))
            .ok_or_else(too_much)?;
        for _ in 0..5 {
            let chosen = self.select(amount.checked_add(fee).ok_or_else(too_much)?, &locked)?;
            let needed = per_byte
                .checked_mul(Self::estimate_size(chosen.len(), 2, extra_bytes))
                .ok_or_else(too_much)?;
            if needed <= fee {
                return Ok((chosen, fee));
            }
            fee = needed;
        }
        Err(WalletError::Build("could not settle on a fee".into()))
    }

    /// Sends `amount` to `to`; change returns to this wallet.
    pub async fn transfer(
        &mut self,
        daemon: &Daemon,
        to: &Address,
        amount: u64,
    ) -> Result<(TxHash, u64), WalletError> {
        let (chosen, fee) = self.choose_inputs(daemon, amount, 40).await?;
        let inputs = self.ring_inputs(daemon, &chosen).await?;
        let total: u64 = chosen.iter().map(|o| o.amount).sum();
        let mut dests = vec![(*to, amount)];
        if total > amount + fee {
            dests.push((self.address(), total - amount - fee));
        }
        let built = build_transfer(
            &mut rand::rngs::OsRng,
            &inputs,
            &dests,
            fee,
            TxType::Standard,
            &[],
        )
        .map_err(|e| WalletError::Build(e.to_string()))?;
        let hash = self.submit(daemon, &built.tx, &chosen).await?;
        Ok((hash, fee))
    }

    /// Stakes `amount` to service node `sn` (a contribution), or registers it when
    /// `registration_args` (the words after `register_service_node`) are given.
    pub async fn stake(
        &mut self,
        daemon: &Daemon,
        sn: Option<PublicKey>,
        amount: Option<u64>,
        registration_args: Option<&[&str]>,
    ) -> Result<(TxHash, u64, PublicKey), WalletError> {
        let (reg, sn, amount) = match registration_args {
            Some(args) => {
                let (reg, key) = parse_command(args, self.params)
                    .map_err(|e| WalletError::Usage(e.to_string()))?;
                let op = Address {
                    spend: reg.public_spend_keys[0],
                    view: reg.public_view_keys[0],
                };
                if op != self.address() {
                    return Err(WalletError::Usage(
                        "the registration's operator address is not this wallet's address".into(),
                    ));
                }
                let amt = reg.amounts[0];
                (Some(reg), key, amt)
            }
            None => (
                None,
                sn.ok_or_else(|| WalletError::Usage("service node pubkey required".into()))?,
                amount.ok_or_else(|| WalletError::Usage("amount required".into()))?,
            ),
        };
        let (chosen, fee) = self.choose_inputs(daemon, amount, 400).await?;
        let inputs = self.ring_inputs(daemon, &chosen).await?;
        let built = build_stake_tx(
            &mut rand::rngs::OsRng,
            &self.account.spend,
            &self.account.view,
            &inputs,
            sn,
            amount,
            fee,
            reg,
        )
        .map_err(|e| WalletError::Build(e.to_string()))?;
        let hash = self.submit(daemon, &built.tx, &chosen).await?;
        Ok((hash, fee, sn))
    }

    /// Requests the unlock of this wallet's stake in `sn`.
    pub async fn request_unlock(
        &mut self,
        daemon: &Daemon,
        sn: PublicKey,
    ) -> Result<TxHash, WalletError> {
        let locked = self.locked_key_images(daemon).await?;
        let mine = self
            .cache
            .outputs
            .iter()
            .find(|o| {
                o.spent_in.is_none()
                    && locked
                        .get(&o.key_image)
                        .is_some_and(|pk| pk == &sn.to_hex())
            })
            .cloned()
            .ok_or_else(|| {
                WalletError::Usage(format!("this wallet has no stake locked in {sn}"))
            })?;
        let secret = scalar_hex(&mine.shared)? + self.account.spend;
        let tx = build_unlock_tx(&mut rand::rngs::OsRng, &secret, mine.key_image, sn);
        self.submit(daemon, &tx, &[]).await
    }

    /// This wallet's stakes: (service node, key image, amount).
    pub fn stakes<'a>(
        &'a self,
        locked: &'a BTreeMap<KeyImage, String>,
    ) -> impl Iterator<Item = (&'a str, &'a OwnedOutput)> + 'a {
        self.cache
            .outputs
            .iter()
            .filter(|o| o.spent_in.is_none())
            .filter_map(|o| locked.get(&o.key_image).map(|pk| (pk.as_str(), o)))
    }
}

/// Bytes a CLSAG ring of 10 adds per input beyond its members.
const fn self_ring_overhead() -> usize {
    32 * 12
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(i: u8, spent_in: Option<TxHash>, spent_height: Option<u64>) -> OwnedOutput {
        OwnedOutput {
            global_index: u64::from(i),
            tx_hash: TxHash([i; 32]),
            height: 1,
            index_in_tx: 0,
            amount: 5,
            mask: String::new(),
            shared: String::new(),
            key: PublicKey([i; 32]),
            key_image: KeyImage([i; 32]),
            unlock_time: 0,
            spent_in,
            spent_height,
        }
    }

    #[test]
    fn the_real_output_is_asked_for_once_and_only_among_decoys() {
        let have = BTreeMap::from([(7u64, ([0u8; 32], [0u8; 32]))]);
        let first = ring_request([9, 3, 7, 42, 3, 100].into_iter(), 42, true, &have);
        assert_eq!(
            first,
            vec![3, 9, 42, 100],
            "sorted, deduplicated, known ones dropped"
        );
        let later = ring_request([42, 5, 1].into_iter(), 42, false, &have);
        assert_eq!(later, vec![1, 5], "never asked for again, even if picked");
    }

    #[test]
    fn dropped_spends_give_their_outputs_back() {
        let (dropped, pooled, mined) = (TxHash([1; 32]), TxHash([2; 32]), TxHash([3; 32]));
        let mut cache = WalletCache {
            outputs: vec![
                output(1, Some(dropped), None),
                output(2, Some(pooled), None),
                output(3, Some(dropped), Some(9)),
                output(4, Some(mined), Some(9)),
                output(5, None, None),
            ],
            ..WalletCache::default()
        };
        let gone: HashSet<TxHash> = [dropped].into();
        assert_eq!(release_missing(&mut cache, &gone), 1);
        assert_eq!(
            cache.outputs[0].spent_in, None,
            "the dropped spend is released"
        );
        assert_eq!(cache.outputs[1].spent_in, Some(pooled), "still pooled");
        assert_eq!(cache.outputs[2].spent_in, Some(dropped), "mined: kept");
    }

    #[test]
    fn a_daemon_fee_far_above_the_network_default_is_refused() {
        assert_eq!(checked_fee_per_byte(None, 300).ok(), Some(300));
        assert_eq!(checked_fee_per_byte(Some(3_000), 300).ok(), Some(3_000));
        assert!(checked_fee_per_byte(Some(3_001), 300).is_err());
        assert!(checked_fee_per_byte(Some(u64::MAX), 300).is_err());
    }
}
