//! Transactions: a v4-style prefix (per-output unlock times, tx type) written with Cryptonote
//! varints, followed by monero-oxide's RingCT data (reference `service-nodes.md` §6.2).
//! monero-oxide only parses Monero's own v1/v2 layout, so the prefix codec is ours.

use monero_oxide::ringct::{RctProofs, RctPrunable};
use monero_oxide::transaction::{Input, Output};

use crate::crypto::keccak256;
use crate::reader::{put_varint, DecodeError, Reader};
use crate::types::{KeyImage, TxHash};

/// Transaction versions this codec reads.
pub const MIN_TX_VERSION: u64 = 2;
/// Newest transaction version.
pub const MAX_TX_VERSION: u64 = 4;

/// What a v4 transaction does.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TxType {
    /// Ordinary transfer.
    Standard = 0,
    /// Service node state change (no inputs or outputs).
    StateChange = 1,
    /// Stake unlock request (no inputs or outputs).
    KeyImageUnlock = 2,
    /// Registration or contribution.
    Stake = 3,
    /// Name system record.
    NameSystem = 4,
}

impl TxType {
    fn from_u64(v: u64) -> Option<TxType> {
        Some(match v {
            0 => TxType::Standard,
            1 => TxType::StateChange,
            2 => TxType::KeyImageUnlock,
            3 => TxType::Stake,
            4 => TxType::NameSystem,
            _ => return None,
        })
    }
}

/// A transaction.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Transaction {
    /// Format version (2..=4).
    pub version: u64,
    /// Per-output unlock times (v3+; one per output).
    pub output_unlock_times: Vec<u64>,
    /// v3 only: the legacy state-change flag.
    pub v3_state_change: bool,
    /// Unlock time of the whole transaction.
    pub unlock_time: u64,
    /// Inputs (`Gen` for coinbase).
    pub inputs: Vec<Input>,
    /// Outputs.
    pub outputs: Vec<Output>,
    /// Raw tx_extra (parse with [`crate::extra::parse_extra`]).
    pub extra: Vec<u8>,
    /// v4 type.
    pub tx_type: TxType,
    /// RingCT data; `None` for coinbase and input-less transactions.
    pub rct: Option<RctProofs>,
}

impl Transaction {
    /// Whether this is a coinbase (one `Gen` input).
    pub fn is_coinbase(&self) -> bool {
        matches!(self.inputs.as_slice(), [Input::Gen(_)])
    }

    /// Key images spent by this transaction.
    pub fn key_images(&self) -> Vec<KeyImage> {
        self.inputs
            .iter()
            .filter_map(|i| match i {
                Input::ToKey { key_image, .. } => Some(KeyImage(key_image.to_bytes())),
                Input::Gen(_) => None,
            })
            .collect()
    }

    /// The fee paid (RingCT fee; 0 without RingCT data).
    pub fn fee(&self) -> u64 {
        self.rct.as_ref().map_or(0, |r| r.base.fee)
    }

    /// Serialises the prefix.
    pub fn write_prefix(&self, out: &mut Vec<u8>) {
        put_varint(out, self.version);
        if self.version >= 3 {
            put_varint(out, self.output_unlock_times.len() as u64);
            self.output_unlock_times
                .iter()
                .for_each(|t| put_varint(out, *t));
            if self.version == 3 {
                out.push(u8::from(self.v3_state_change));
            }
        }
        put_varint(out, self.unlock_time);
        put_varint(out, self.inputs.len() as u64);
        for i in &self.inputs {
            // Writing into a Vec cannot fail.
            let _ = i.write(out);
        }
        put_varint(out, self.outputs.len() as u64);
        for o in &self.outputs {
            let _ = o.write(out);
        }
        put_varint(out, self.extra.len() as u64);
        out.extend_from_slice(&self.extra);
        if self.version >= 4 {
            put_varint(out, self.tx_type as u64);
        }
    }

    /// The full blob.
    pub fn serialize(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        self.write_prefix(&mut out);
        match &self.rct {
            Some(rct) => {
                let _ = rct.write(&mut out);
            }
            None => out.push(0),
        }
        out
    }

    /// Keccak of the prefix.
    pub fn prefix_hash(&self) -> [u8; 32] {
        let mut out = Vec::with_capacity(256);
        self.write_prefix(&mut out);
        keccak256(out)
    }

    fn base_hash(&self) -> [u8; 32] {
        match &self.rct {
            Some(rct) => {
                let mut buf = Vec::new();
                let _ = rct.base.write(&mut buf, rct.rct_type());
                keccak256(buf)
            }
            None => keccak256([0u8]),
        }
    }

    /// The transaction id: Keccak(prefix hash || base hash || prunable hash).
    pub fn hash(&self) -> TxHash {
        let prunable = match &self.rct {
            Some(rct) => {
                let mut buf = Vec::new();
                let _ = rct.prunable.write(&mut buf, rct.rct_type());
                keccak256(buf)
            }
            None => [0u8; 32],
        };
        TxHash(keccak256(
            [self.prefix_hash(), self.base_hash(), prunable].concat(),
        ))
    }

    /// The message RingCT signatures sign: Keccak(prefix hash || base hash || hash of the
    /// range proof's signed part). `None` without CLSAG/Bulletproof data.
    pub fn signature_hash(&self) -> Option<[u8; 32]> {
        let rct = self.rct.as_ref()?;
        let bp = match &rct.prunable {
            RctPrunable::Clsag { bulletproof, .. } => bulletproof,
            _ => return None,
        };
        let mut buf = Vec::new();
        let _ = bp.signature_write(&mut buf);
        Some(keccak256(
            [self.prefix_hash(), self.base_hash(), keccak256(buf)].concat(),
        ))
    }

    /// Reads one transaction from `r`.
    pub fn read(r: &mut Reader<'_>) -> Result<Transaction, DecodeError> {
        let version = r.varint("tx version")?;
        if !(MIN_TX_VERSION..=MAX_TX_VERSION).contains(&version) {
            return Err(DecodeError::Invalid(format!("tx version {version}")));
        }
        let mut output_unlock_times = Vec::new();
        let mut v3_state_change = false;
        if version >= 3 {
            let n = r.count("output unlock times", 1)?;
            output_unlock_times = (0..n)
                .map(|_| r.varint("output unlock time"))
                .collect::<Result<_, _>>()?;
            if version == 3 {
                v3_state_change = match r.byte("state change flag")? {
                    0 => false,
                    1 => true,
                    b => return Err(DecodeError::Invalid(format!("state change flag {b}"))),
                };
            }
        }
        let unlock_time = r.varint("unlock time")?;
        let n_in = r.count("inputs", 2)?;
        let mut inputs = Vec::with_capacity(n_in);
        for _ in 0..n_in {
            let mut s = r.rest();
            let before = s.len();
            let input =
                Input::read(&mut s).map_err(|e| DecodeError::Invalid(format!("input: {e}")))?;
            r.advance(before - s.len(), "input")?;
            inputs.push(input);
        }
        let n_out = r.count("outputs", 34)?;
        let mut outputs = Vec::with_capacity(n_out);
        for _ in 0..n_out {
            let mut s = r.rest();
            let before = s.len();
            let mut o = Output::read(false, &mut s)
                .map_err(|e| DecodeError::Invalid(format!("output: {e}")))?;
            r.advance(before - s.len(), "output")?;
            if o.amount == Some(0) {
                o.amount = None;
            }
            outputs.push(o);
        }
        let n_extra = r.count("extra", 1)?;
        let extra = r.slice(n_extra, "extra")?.to_vec();
        let tx_type = if version >= 4 {
            let t = r.varint("tx type")?;
            TxType::from_u64(t).ok_or_else(|| DecodeError::Invalid(format!("tx type {t}")))?
        } else if v3_state_change {
            TxType::StateChange
        } else {
            TxType::Standard
        };
        if version >= 3 && output_unlock_times.len() != outputs.len() {
            return Err(DecodeError::Invalid(
                "output unlock times do not match outputs".into(),
            ));
        }
        let has_ring_inputs = inputs.iter().any(|i| matches!(i, Input::ToKey { .. }));
        let rct = if has_ring_inputs {
            if inputs.iter().any(|i| matches!(i, Input::Gen(_))) {
                return Err(DecodeError::Invalid(
                    "coinbase input mixed with ring inputs".into(),
                ));
            }
            let ring_len = match &inputs[0] {
                Input::ToKey { key_offsets, .. } => key_offsets.len(),
                Input::Gen(_) => 0,
            };
            if inputs.iter().any(
                |i| matches!(i, Input::ToKey { key_offsets, .. } if key_offsets.len() != ring_len),
            ) {
                return Err(DecodeError::Invalid(
                    "inputs have different ring sizes".into(),
                ));
            }
            let mut s = r.rest();
            let before = s.len();
            let rct = RctProofs::read(ring_len, inputs.len(), outputs.len(), &mut s)
                .map_err(|e| DecodeError::Invalid(format!("ringct: {e}")))?;
            r.advance(before - s.len(), "ringct")?;
            rct
        } else {
            match r.byte("rct type")? {
                0 => None,
                t => {
                    return Err(DecodeError::Invalid(format!(
                        "rct type {t} on a transaction without ring inputs"
                    )))
                }
            }
        };
        Ok(Transaction {
            version,
            output_unlock_times,
            v3_state_change,
            unlock_time,
            inputs,
            outputs,
            extra,
            tx_type,
            rct,
        })
    }

    /// Parses a whole blob; trailing bytes are an error.
    pub fn from_bytes(blob: &[u8]) -> Result<Transaction, DecodeError> {
        let mut r = Reader::new(blob);
        let tx = Transaction::read(&mut r)?;
        r.finish()?;
        Ok(tx)
    }
}
