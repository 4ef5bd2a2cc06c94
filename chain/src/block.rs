//! Blocks: header, miner transaction, transaction hashes; Keccak tree hash and block id as in
//! Monero (reference `service-nodes.md` §6.4). Sispop blocks are mined; there is no Pulse header.

use monero_oxide::merkle::merkle_root;

use crate::crypto::keccak256;
use crate::reader::{put_varint, DecodeError, Reader};
use crate::tx::Transaction;
use crate::types::{BlockHash, Height, TxHash};

/// Block header.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BlockHeader {
    /// Hard fork version.
    pub major_version: u8,
    /// Minor version (vote / revision).
    pub minor_version: u8,
    /// Unix time claimed by the miner.
    pub timestamp: u64,
    /// Id of the previous block.
    pub prev_id: BlockHash,
    /// PoW nonce.
    pub nonce: u32,
}

impl BlockHeader {
    /// Serialises the header.
    pub fn write(&self, out: &mut Vec<u8>) {
        put_varint(out, u64::from(self.major_version));
        put_varint(out, u64::from(self.minor_version));
        put_varint(out, self.timestamp);
        out.extend_from_slice(&self.prev_id.0);
        out.extend_from_slice(&self.nonce.to_le_bytes());
    }

    fn read(r: &mut Reader<'_>) -> Result<BlockHeader, DecodeError> {
        let version = |r: &mut Reader<'_>, what| -> Result<u8, DecodeError> {
            let v = r.varint(what)?;
            u8::try_from(v).map_err(|_| DecodeError::Invalid(format!("{what} {v}")))
        };
        Ok(BlockHeader {
            major_version: version(r, "major version")?,
            minor_version: version(r, "minor version")?,
            timestamp: r.varint("timestamp")?,
            prev_id: BlockHash(r.array("prev id")?),
            nonce: r.u32_le("nonce")?,
        })
    }
}

/// A block.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Block {
    /// Header.
    pub header: BlockHeader,
    /// Coinbase transaction.
    pub miner_tx: Transaction,
    /// Ids of the other transactions, in order.
    pub tx_hashes: Vec<TxHash>,
}

impl Block {
    /// The height the miner tx claims (its `Gen` input).
    pub fn claimed_height(&self) -> Option<Height> {
        match self.miner_tx.inputs.as_slice() {
            [monero_oxide::transaction::Input::Gen(h)] => Some(Height(*h as u64)),
            _ => None,
        }
    }

    /// The full blob.
    pub fn serialize(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512 + 32 * self.tx_hashes.len());
        self.header.write(&mut out);
        out.extend(self.miner_tx.serialize());
        put_varint(&mut out, self.tx_hashes.len() as u64);
        self.tx_hashes
            .iter()
            .for_each(|h| out.extend_from_slice(&h.0));
        out
    }

    /// Keccak tree hash of the miner tx id and the transaction ids.
    pub fn tree_root(&self) -> [u8; 32] {
        let mut leaves = Vec::with_capacity(self.tx_hashes.len() + 1);
        leaves.push(self.miner_tx.hash().0);
        leaves.extend(self.tx_hashes.iter().map(|h| h.0));
        merkle_root(leaves).unwrap_or([0; 32])
    }

    /// header || tree root || varint(tx count + 1): the blob the id and PoW commit to.
    pub fn hashing_blob(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        self.header.write(&mut out);
        out.extend_from_slice(&self.tree_root());
        put_varint(&mut out, self.tx_hashes.len() as u64 + 1);
        out
    }

    /// The block id: Keccak(varint(len) || hashing blob), as Monero computes it.
    pub fn hash(&self) -> BlockHash {
        let blob = self.hashing_blob();
        let mut buf = Vec::with_capacity(blob.len() + 2);
        put_varint(&mut buf, blob.len() as u64);
        buf.extend(blob);
        BlockHash(keccak256(buf))
    }

    /// Parses a whole blob; trailing bytes are an error.
    pub fn from_bytes(blob: &[u8]) -> Result<Block, DecodeError> {
        let mut r = Reader::new(blob);
        let header = BlockHeader::read(&mut r)?;
        let miner_tx = Transaction::read(&mut r)?;
        let n = r.count("tx hashes", 32)?;
        let tx_hashes = (0..n)
            .map(|_| r.array("tx hash").map(TxHash))
            .collect::<Result<_, _>>()?;
        r.finish()?;
        Ok(Block {
            header,
            miner_tx,
            tx_hashes,
        })
    }
}
