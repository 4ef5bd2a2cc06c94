//! Wire formats of the node-to-node protocols, bounds-checked both ways. Blobs are
//! length-prefixed (u32 LE); every count is checked against the bytes that remain.
//!
//! - gossip `sispop/blocks/1`: `block ‖ u32 tx count ‖ txs` (each length-prefixed)
//! - gossip `sispop/txs/1`: the raw transaction blob
//! - request-response `/sispop/sync/1` and `/sispop/sn/1`: [`Request`] / [`Response`]

use sispop_chain::reader::{DecodeError, Reader};

/// Most blocks one sync response carries.
pub const MAX_BLOCKS_PER_RESPONSE: u32 = 20;
/// Largest request accepted.
pub const MAX_REQUEST_BYTES: u64 = 1024;
/// Largest response accepted.
pub const MAX_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;
/// Largest gossip message.
pub const MAX_GOSSIP_BYTES: usize = 4 * 1024 * 1024;

/// A block with its transactions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireBlock {
    /// Block blob.
    pub blob: Vec<u8>,
    /// Transaction blobs in block order.
    pub txs: Vec<Vec<u8>>,
}

/// Requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// The peer's chain tip.
    Tip,
    /// Main-chain blocks from a height.
    Blocks {
        /// First height.
        from: u64,
        /// How many (capped at [`MAX_BLOCKS_PER_RESPONSE`]).
        count: u32,
    },
    /// SN-only liveness check carrying the sender's height.
    SnPing {
        /// Sender's height.
        height: u64,
    },
    /// Where our chains meet: our main-chain hashes, highest first (a block locator, at most
    /// [`crate::p2p::sync_policy::MAX_LOCATOR`]).
    Locator(Vec<[u8; 32]>),
    /// Addresses of other peers the responder knows (peer exchange).
    Peers,
}

/// Most addresses in one peer-exchange answer.
pub const MAX_PEER_ADDRS: usize = 32;
/// Longest address (a multiaddr's bytes) in a peer-exchange answer.
pub const MAX_PEER_ADDR_BYTES: usize = 64;

/// Responses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// Chain tip.
    Tip {
        /// Height.
        height: u64,
        /// Block id.
        hash: [u8; 32],
        /// Cumulative difficulty.
        cumulative_difficulty: u128,
    },
    /// Blocks.
    Blocks(Vec<WireBlock>),
    /// Answer to an SN ping, with the responder's clock (upstream's `quorum.timestamp`).
    SnPong {
        /// Responder's height.
        height: u64,
        /// Responder's unix time.
        now: u64,
    },
    /// Refused, with the reason.
    Refused(String),
    /// The highest locator entry on the responder's main chain.
    ForkPoint {
        /// Its height.
        height: u64,
        /// Its hash.
        hash: [u8; 32],
    },
    /// Peer addresses (multiaddr bytes), at most [`MAX_PEER_ADDRS`].
    Peers(Vec<Vec<u8>>),
}

fn put_blob(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

fn get_blob(r: &mut Reader<'_>, what: &'static str) -> Result<Vec<u8>, DecodeError> {
    let n = r.u32_le(what)? as usize;
    Ok(r.slice(n, what)?.to_vec())
}

fn get_count(
    r: &mut Reader<'_>,
    what: &'static str,
    min_elem: usize,
) -> Result<usize, DecodeError> {
    let n = r.u32_le(what)? as usize;
    if n.saturating_mul(min_elem) > r.remaining() {
        return Err(DecodeError::Count {
            field: what,
            count: n as u64,
            remaining: r.remaining(),
        });
    }
    Ok(n)
}

/// Most transactions a block may carry on any network (`NetworkParams::max_block_txs`).
pub const MAX_BLOCK_TXS: usize = 10_000;

impl WireBlock {
    /// Encodes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_blob(out, &self.blob);
        out.extend_from_slice(&(self.txs.len() as u32).to_le_bytes());
        self.txs.iter().for_each(|t| put_blob(out, t));
    }
    fn read(r: &mut Reader<'_>) -> Result<WireBlock, DecodeError> {
        let blob = get_blob(r, "block")?;
        let n = get_count(r, "tx count", 4)?;
        // No network allows more in a block; a peer's count is not an allocation size.
        if n > MAX_BLOCK_TXS {
            return Err(DecodeError::Count {
                field: "tx count",
                count: n as u64,
                remaining: r.remaining(),
            });
        }
        let txs = (0..n)
            .map(|_| get_blob(r, "tx"))
            .collect::<Result<_, _>>()?;
        Ok(WireBlock { blob, txs })
    }
    /// Decodes a gossip block message.
    pub fn decode(data: &[u8]) -> Result<WireBlock, DecodeError> {
        let mut r = Reader::new(data);
        let b = WireBlock::read(&mut r)?;
        r.finish()?;
        Ok(b)
    }
    /// Encodes as a gossip block message.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(
            self.blob.len() + 8 + self.txs.iter().map(|t| t.len() + 4).sum::<usize>(),
        );
        self.encode(&mut v);
        v
    }
}

impl Request {
    /// Encodes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(16);
        match self {
            Request::Tip => v.push(0),
            Request::Blocks { from, count } => {
                v.push(1);
                v.extend_from_slice(&from.to_le_bytes());
                v.extend_from_slice(&count.to_le_bytes());
            }
            Request::SnPing { height } => {
                v.push(2);
                v.extend_from_slice(&height.to_le_bytes());
            }
            Request::Locator(hashes) => {
                v.push(3);
                v.push(u8::try_from(hashes.len()).unwrap_or(u8::MAX));
                hashes.iter().take(255).for_each(|h| v.extend_from_slice(h));
            }
            Request::Peers => v.push(4),
        }
        v
    }
    /// Decodes.
    pub fn decode(data: &[u8]) -> Result<Request, DecodeError> {
        let mut r = Reader::new(data);
        let req = match r.byte("request type")? {
            0 => Request::Tip,
            1 => Request::Blocks {
                from: r.u64_le("from")?,
                count: r.u32_le("count")?,
            },
            2 => Request::SnPing {
                height: r.u64_le("height")?,
            },
            3 => {
                let n = usize::from(r.byte("locator length")?);
                if n == 0 || n > crate::p2p::sync_policy::MAX_LOCATOR {
                    return Err(DecodeError::Invalid(format!("a locator of {n} hashes")));
                }
                Request::Locator(
                    (0..n)
                        .map(|_| r.array::<32>("locator hash"))
                        .collect::<Result<_, _>>()?,
                )
            }
            4 => Request::Peers,
            t => return Err(DecodeError::Invalid(format!("request type {t}"))),
        };
        r.finish()?;
        Ok(req)
    }
}

impl Response {
    /// Encodes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        match self {
            Response::Tip {
                height,
                hash,
                cumulative_difficulty,
            } => {
                v.push(0);
                v.extend_from_slice(&height.to_le_bytes());
                v.extend_from_slice(hash);
                v.extend_from_slice(&cumulative_difficulty.to_le_bytes());
            }
            Response::Blocks(blocks) => {
                v.push(1);
                v.extend_from_slice(&(blocks.len() as u32).to_le_bytes());
                blocks.iter().for_each(|b| b.encode(&mut v));
            }
            Response::SnPong { height, now } => {
                v.push(2);
                v.extend_from_slice(&height.to_le_bytes());
                v.extend_from_slice(&now.to_le_bytes());
            }
            Response::Refused(reason) => {
                v.push(3);
                put_blob(&mut v, reason.as_bytes());
            }
            Response::ForkPoint { height, hash } => {
                v.push(4);
                v.extend_from_slice(&height.to_le_bytes());
                v.extend_from_slice(hash);
            }
            Response::Peers(addrs) => {
                v.push(5);
                let addrs: Vec<&Vec<u8>> = addrs
                    .iter()
                    .filter(|a| a.len() <= MAX_PEER_ADDR_BYTES)
                    .take(MAX_PEER_ADDRS)
                    .collect();
                v.push(addrs.len() as u8);
                for a in addrs {
                    v.push(a.len() as u8);
                    v.extend_from_slice(a);
                }
            }
        }
        v
    }
    /// Decodes.
    pub fn decode(data: &[u8]) -> Result<Response, DecodeError> {
        let mut r = Reader::new(data);
        let resp = match r.byte("response type")? {
            0 => {
                let height = r.u64_le("height")?;
                let hash = r.array::<32>("hash")?;
                let lo = r.u64_le("difficulty")?;
                let hi = r.u64_le("difficulty")?;
                Response::Tip {
                    height,
                    hash,
                    cumulative_difficulty: u128::from(lo) | (u128::from(hi) << 64),
                }
            }
            1 => {
                let n = get_count(&mut r, "block count", 8)?;
                if n > MAX_BLOCKS_PER_RESPONSE as usize {
                    return Err(DecodeError::Invalid(format!("{n} blocks in one response")));
                }
                Response::Blocks(
                    (0..n)
                        .map(|_| WireBlock::read(&mut r))
                        .collect::<Result<_, _>>()?,
                )
            }
            2 => Response::SnPong {
                height: r.u64_le("height")?,
                now: r.u64_le("now")?,
            },
            3 => Response::Refused(
                String::from_utf8_lossy(&get_blob(&mut r, "reason")?).into_owned(),
            ),
            4 => Response::ForkPoint {
                height: r.u64_le("height")?,
                hash: r.array::<32>("hash")?,
            },
            5 => {
                let n = usize::from(r.byte("address count")?);
                if n > MAX_PEER_ADDRS {
                    return Err(DecodeError::Invalid(format!("{n} peer addresses")));
                }
                let mut addrs = Vec::with_capacity(n);
                for _ in 0..n {
                    let len = usize::from(r.byte("address length")?);
                    if len > MAX_PEER_ADDR_BYTES {
                        return Err(DecodeError::Invalid(format!("a {len}-byte address")));
                    }
                    addrs.push(r.slice(len, "address")?.to_vec());
                }
                Response::Peers(addrs)
            }
            t => return Err(DecodeError::Invalid(format!("response type {t}"))),
        };
        r.finish()?;
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_garbage() {
        let b = WireBlock {
            blob: vec![1, 2, 3],
            txs: vec![vec![4], vec![]],
        };
        assert_eq!(WireBlock::decode(&b.to_bytes()), Ok(b.clone()));
        for req in [
            Request::Tip,
            Request::Blocks { from: 5, count: 20 },
            Request::SnPing { height: 9 },
            Request::Locator(vec![[1; 32], [2; 32]]),
            Request::Peers,
        ] {
            assert_eq!(Request::decode(&req.to_bytes()), Ok(req));
        }
        for resp in [
            Response::Tip {
                height: 3,
                hash: [7; 32],
                cumulative_difficulty: u128::MAX - 5,
            },
            Response::Blocks(vec![b.clone(), b]),
            Response::SnPong { height: 1, now: 2 },
            Response::Refused("no".into()),
            Response::ForkPoint {
                height: 4,
                hash: [3; 32],
            },
            Response::Peers(vec![vec![4, 127, 0, 0, 1], vec![]]),
            Response::Peers(vec![]),
        ] {
            assert_eq!(Response::decode(&resp.to_bytes()), Ok(resp));
        }
        assert!(WireBlock::decode(&[0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(Request::decode(&[9]).is_err());
        assert!(Request::decode(&[0, 0]).is_err(), "trailing bytes");
        assert!(Request::decode(&[3, 0]).is_err(), "empty locator");
        let mut long = vec![3, 31];
        long.extend(std::iter::repeat_n(0u8, 31 * 32));
        assert!(Request::decode(&long).is_err(), "locator too long");
        assert!(
            Response::decode(&[1, 0xff, 0xff, 0xff, 0x7f]).is_err(),
            "huge count"
        );
        let mut many = vec![1];
        many.extend_from_slice(&21u32.to_le_bytes());
        many.extend(std::iter::repeat_n(0u8, 21 * 8));
        assert!(
            Response::decode(&many).is_err(),
            "over the per-response block cap"
        );
        // More transactions than any block may hold: refused before they are allocated.
        let big = WireBlock {
            blob: vec![1],
            txs: vec![Vec::new(); MAX_BLOCK_TXS + 1],
        };
        assert!(WireBlock::decode(&big.to_bytes()).is_err());
        let most = WireBlock {
            blob: vec![1],
            txs: vec![Vec::new(); MAX_BLOCK_TXS],
        };
        assert_eq!(WireBlock::decode(&most.to_bytes()), Ok(most));
        // Peer exchange: at most 32 addresses of at most 64 bytes.
        assert!(Response::decode(&[5, 33]).is_err(), "too many addresses");
        let mut long = vec![5, 1, 65];
        long.extend([0u8; 65]);
        assert!(Response::decode(&long).is_err(), "address too long");
        assert!(
            Response::decode(&[5, 1, 4, 1]).is_err(),
            "truncated address"
        );
    }
}

/// The first byte of a request on the storage protocol (`/sispop/storage/1`, and on the
/// persistent links of [`super::link`]): what it asks for. The storage service answers all but
/// [`ONION`](tags::ONION), which is the relay's.
pub mod tags {
    /// A client's write, forwarded by a member of its swarm.
    pub const FORWARD: u8 = 1;
    /// A page of a member's messages, for a node that joined the swarm.
    pub const PULL: u8 = 2;
    /// Messages pushed to a member (a hand-over, or a write delivered again).
    pub const PUSH: u8 = 3;
    /// Storage tests: a witness's sample.
    pub const SAMPLE: u8 = 4;
    /// Storage tests: a proof of one message.
    pub const TEST: u8 = 5;
    /// An onion layer between nodes.
    pub const ONION: u8 = 6;
    /// A page of a member's revocations.
    pub const PULL_REVOKED: u8 = 7;
}
