//! JSON-RPC with oxend method names and fields, on a jsonrpsee `RpcModule`, served over HTTP at
//! `/json_rpc` (and `/`). The oxend-style plain endpoints (`/send_raw_transaction`,
//! `/get_transactions`, `/get_height`, `/get_info`, `/get_outs`, ...) take the params object as
//! the body and answer the result object.

pub mod service_nodes;

use std::convert::Infallible;
use std::net::SocketAddr;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use jsonrpsee::types::{ErrorObjectOwned, Params};
use jsonrpsee::RpcModule;
use serde::Deserialize;
use serde_json::{json, Value};
use sispop_chain::blockchain::UNLOCK_TIME_IS_TIMESTAMP;
use sispop_chain::store::BlockMeta;
use sispop_chain::{Block, BlockHash, Height, PoolError, Transaction, TxHash};
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

use crate::node::{unix_now, Node};

/// Largest request body accepted.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;
/// Largest JSON-RPC batch.
pub const MAX_BATCH: usize = 16;
/// Most items one list request may ask for.
pub const MAX_LIST_ITEMS: usize = 5000;
/// Most transaction bytes one `get_transactions` answer carries (before hex).
pub const MAX_TX_BYTES: usize = 16 * 1024 * 1024;
/// Most heights one header-range request may span.
pub const MAX_HEADER_RANGE: u64 = 1000;

/// Methods for the operator only, hidden from restricted callers (as oxend's restricted RPC):
/// they stop or steer the node, or reveal its keys and registration.
pub const RESTRICTED: &[&str] = &[
    "stop_daemon",
    "submit_block",
    "generateblocks",
    "get_service_keys",
    "get_service_node_key",
    "get_service_node_status",
    "get_service_node_registration_cmd",
    "get_service_node_registration_cmd_raw",
];

/// Whether the RPC restricts a caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restriction {
    /// Every caller (`--restricted-rpc`).
    All,
    /// No caller (`--restricted-rpc=0`).
    None,
    /// Callers not on loopback (the default).
    Remote,
}

impl Restriction {
    /// From `--restricted-rpc`.
    pub fn from_flag(flag: Option<bool>) -> Restriction {
        match flag {
            Some(true) => Restriction::All,
            Some(false) => Restriction::None,
            None => Restriction::Remote,
        }
    }

    /// Whether a caller at `peer` is restricted.
    pub fn applies_to(self, peer: std::net::IpAddr) -> bool {
        match self {
            Restriction::All => true,
            Restriction::None => false,
            Restriction::Remote => !peer.is_loopback(),
        }
    }
}

/// Most open RPC connections.
const MAX_CONNECTIONS: usize = 256;
/// The request head must arrive within this.
const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

const METHOD_NOT_FOUND: i32 = -32601;
const INVALID_PARAMS: i32 = -32602;
const NOT_FOUND: i32 = -5;
const INTERNAL: i32 = -32603;

pub(crate) type RpcResult = Result<Value, ErrorObjectOwned>;

pub(crate) fn invalid(msg: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(INVALID_PARAMS, msg.into(), None::<()>)
}

pub(crate) fn not_found(msg: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(NOT_FOUND, msg.into(), None::<()>)
}

pub(crate) fn internal(e: impl std::fmt::Display) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(INTERNAL, format!("internal error: {e}"), None::<()>)
}

/// Params as an object; absent params read as `{}`.
pub(crate) fn parse<T: for<'de> Deserialize<'de> + Default>(
    p: &Params<'_>,
) -> Result<T, ErrorObjectOwned> {
    if p.as_str().is_none_or(|s| s.trim().is_empty()) {
        return Ok(T::default());
    }
    let v: Value = p
        .parse()
        .map_err(|_| invalid("params must be a JSON object"))?;
    if v.as_array().is_some_and(Vec::is_empty) {
        return Ok(T::default());
    }
    serde_json::from_value(v).map_err(|e| invalid(format!("invalid params: {e}")))
}

fn block_header(
    hash: &BlockHash,
    meta: &BlockMeta,
    block: &Block,
    blob_len: usize,
    tip: Height,
) -> Value {
    let reward: u64 = block.miner_tx.outputs.iter().filter_map(|o| o.amount).sum();
    json!({
        "major_version": block.header.major_version,
        "minor_version": block.header.minor_version,
        "timestamp": block.header.timestamp,
        "prev_hash": block.header.prev_id.to_hex(),
        "nonce": block.header.nonce,
        "orphan_status": false,
        "height": meta.height.0,
        "depth": tip.0 - meta.height.0,
        "hash": hash.to_hex(),
        "difficulty": meta.difficulty.to_string().parse::<u64>().unwrap_or(u64::MAX),
        "cumulative_difficulty": meta.cumulative_difficulty.to_string().parse::<u64>().unwrap_or(u64::MAX),
        "reward": reward,
        "miner_reward": reward,
        "block_size": blob_len,
        "block_weight": blob_len,
        "num_txes": block.tx_hashes.len(),
        "miner_tx_hash": block.miner_tx.hash().to_hex(),
        "tx_hashes": block.tx_hashes.iter().map(|h| h.to_hex()).collect::<Vec<_>>(),
    })
}

fn header_at(node: &Node, height: Height) -> RpcResult {
    let st = node.lock();
    let tip = st.chain.tip().0;
    let (hash, meta, blob) = st
        .chain
        .block_at(height)
        .map_err(internal)?
        .ok_or_else(|| {
            not_found(format!(
                "no block at height {}; the chain tip is {}",
                height, tip
            ))
        })?;
    let block = Block::from_bytes(&blob).map_err(internal)?;
    Ok(block_header(&hash, &meta, &block, blob.len(), tip))
}

#[derive(Deserialize, Default)]
struct HeightParam {
    height: Option<u64>,
}

#[derive(Deserialize, Default)]
struct HashParam {
    hash: Option<String>,
}

#[derive(Deserialize, Default)]
struct GetBlockParams {
    height: Option<u64>,
    hash: Option<String>,
}

#[derive(Deserialize, Default)]
struct RangeParams {
    start_height: Option<u64>,
    end_height: Option<u64>,
}

#[derive(Deserialize, Default)]
struct SendRawTx {
    tx_as_hex: Option<String>,
    #[serde(default)]
    do_not_relay: bool,
}

#[derive(Deserialize, Default)]
struct GetTransactions {
    #[serde(default)]
    txs_hashes: Vec<String>,
}

#[derive(Deserialize, Default)]
struct OutRequest {
    #[serde(default)]
    amount: u64,
    index: u64,
}

#[derive(Deserialize, Default)]
struct GetOuts {
    #[serde(default)]
    outputs: Vec<OutRequest>,
    #[serde(default)]
    get_txid: bool,
}

#[derive(Deserialize, Default)]
struct OutputDistribution {
    #[serde(default)]
    amounts: Vec<u64>,
    #[serde(default)]
    from_height: u64,
    #[serde(default)]
    to_height: u64,
    #[serde(default)]
    cumulative: bool,
}

fn parse_hash(s: &str, what: &str) -> Result<[u8; 32], ErrorObjectOwned> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out)
        .map_err(|_| invalid(format!("{what} must be 64 hex characters")))?;
    Ok(out)
}

fn get_info(node: &Node) -> RpcResult {
    let net = node
        .net
        .get()
        .map(|n| n.stats.lock().unwrap_or_else(|p| p.into_inner()).clone())
        .unwrap_or_default();
    let st = node.lock();
    let (tip_h, tip_hash) = st.chain.tip();
    let params = node.params;
    Ok(json!({
        "status": "OK",
        "height": st.chain.block_count(),
        "target_height": st.chain.block_count().max(net.best_peer_height.saturating_add(1)),
        "top_block_hash": tip_hash.to_hex(),
        "difficulty": st.chain.next_difficulty().map_err(internal)?.to_string().parse::<u64>().unwrap_or(u64::MAX),
        "cumulative_difficulty": st.chain.tip_meta().cumulative_difficulty.to_string().parse::<u64>().unwrap_or(u64::MAX),
        "target": params.target_block_time,
        "tx_pool_size": st.pool.len(),
        "tx_pool_bytes": st.pool.bytes(),
        "outputs_count": st.chain.output_count(),
        "hard_fork": params.hard_fork_at(tip_h),
        "nettype": params.name,
        "mainnet": params.network == sispop_chain::Network::Mainnet,
        "testnet": params.network == sispop_chain::Network::Testnet,
        "devnet": params.network == sispop_chain::Network::Devnet,
        "start_time": unix_now().saturating_sub(st.started.elapsed().as_secs()),
        "uptime": st.started.elapsed().as_secs(),
        "version": env!("CARGO_PKG_VERSION"),
        "outgoing_connections_count": net.outgoing,
        "incoming_connections_count": net.incoming,
        "p2p_peer_id": net.peer_id,
        "p2p_listen": net.listen,
        "banned_peers": net.banned,
        "sn_only_refusals": net.sn_refusals,
        "mining": st.mining_to.is_some(),
        "service_node": st.sn_keys.is_some(),
        "blocks_mined": st.blocks_mined,
        "block_size_limit": params.max_block_size,
        "synchronized": st.chain.block_count() > net.best_peer_height,
        "busy_syncing": st.chain.block_count() <= net.best_peer_height,
        "offline": false,
    }))
}

fn send_raw_transaction(node: &Node, p: SendRawTx) -> RpcResult {
    let Some(hexstr) = p.tx_as_hex else {
        return Err(invalid("tx_as_hex is required"));
    };
    let Ok(blob) = hex::decode(hexstr.trim()) else {
        return Ok(
            json!({"status": "Failed", "reason": "tx_as_hex is not hex", "invalid_input": true}),
        );
    };
    match node.add_tx(blob, !p.do_not_relay) {
        Ok(hash) => {
            info!(tx = %hash, relay = !p.do_not_relay, "transaction accepted into the pool");
            Ok(json!({"status": "OK", "tx_hash": hash.to_hex(), "not_relayed": p.do_not_relay}))
        }
        Err(e) => {
            debug!(error = %e, "transaction refused");
            let (double_spend, fee_too_low) = match &e {
                PoolError::Conflict(..)
                | PoolError::Invalid(
                    sispop_chain::TxError::Spent(_) | sispop_chain::TxError::DoubleSpend(_),
                ) => (true, false),
                PoolError::Invalid(sispop_chain::TxError::FeeTooLow { .. }) => (false, true),
                _ => (false, false),
            };
            Ok(
                json!({"status": "Failed", "reason": e.to_string(), "double_spend": double_spend, "fee_too_low": fee_too_low}),
            )
        }
    }
}

fn get_transactions(node: &Node, p: GetTransactions) -> RpcResult {
    if p.txs_hashes.len() > MAX_LIST_ITEMS {
        return Err(invalid(format!(
            "at most {MAX_LIST_ITEMS} hashes per request"
        )));
    }
    let mut hashes = Vec::with_capacity(p.txs_hashes.len());
    let mut seen = std::collections::HashSet::new();
    for h in &p.txs_hashes {
        let hash = TxHash(parse_hash(h, "txs_hashes entry")?);
        if seen.insert(hash.0) {
            hashes.push(hash);
        }
    }
    let st = node.lock();
    let mut txs = Vec::new();
    let mut missed = Vec::new();
    let mut bytes = 0usize;
    for hash in hashes {
        if bytes > MAX_TX_BYTES {
            return Err(invalid(format!(
                "the transactions asked for exceed {MAX_TX_BYTES} bytes; ask for fewer"
            )));
        }
        if let Some((height, first_out, blob)) = st.chain.store().tx(&hash).map_err(internal)? {
            let n = Transaction::from_bytes(&blob)
                .map(|t| t.outputs.len())
                .unwrap_or(0) as u64;
            bytes += blob.len();
            txs.push(json!({
                "tx_hash": hash.to_hex(),
                "as_hex": hex::encode(&blob),
                "block_height": height.0,
                "in_pool": false,
                "output_indices": (first_out..first_out + n).collect::<Vec<_>>(),
            }));
        } else if let Some(e) = st.pool.get(&hash) {
            bytes += e.blob.len();
            txs.push(json!({"tx_hash": hash.to_hex(), "as_hex": hex::encode(&e.blob), "in_pool": true, "received_timestamp": e.received}));
        } else {
            missed.push(hash.to_hex());
        }
    }
    Ok(json!({"status": "OK", "txs": txs, "missed_tx": missed}))
}

fn get_outs(node: &Node, p: GetOuts) -> RpcResult {
    if p.outputs.len() > MAX_LIST_ITEMS {
        return Err(invalid(format!(
            "at most {MAX_LIST_ITEMS} outputs per request"
        )));
    }
    let st = node.lock();
    let tip = st.chain.tip().0;
    let mut outs = Vec::with_capacity(p.outputs.len());
    for o in &p.outputs {
        if o.amount != 0 {
            return Err(invalid("only RingCT outputs (amount 0) are indexed"));
        }
        let rec = st
            .chain
            .store()
            .output(o.index)
            .map_err(internal)?
            .ok_or_else(|| not_found(format!("output {} does not exist", o.index)))?;
        let next = tip.0 + 1;
        let unlocked = next >= rec.height.0 + node.params.spendable_age
            && (rec.unlock_time >= UNLOCK_TIME_IS_TIMESTAMP || next >= rec.unlock_time);
        let mut v = json!({"key": hex::encode(rec.key), "mask": hex::encode(rec.commitment), "unlocked": unlocked, "height": rec.height.0});
        if p.get_txid {
            v["txid"] = json!(rec.tx_hash.to_hex());
        }
        outs.push(v);
    }
    Ok(json!({"status": "OK", "outs": outs}))
}

/// Heights read per hold of the node lock while building an output distribution.
const DISTRIBUTION_CHUNK: u64 = 10_000;

fn get_output_distribution(node: &Node, p: OutputDistribution) -> RpcResult {
    // Only amount 0 is indexed: one distribution however often it is asked for.
    if p.amounts.iter().any(|a| *a != 0) {
        return Err(invalid("only RingCT outputs (amount 0) are indexed"));
    }
    let tip = node.lock().chain.tip().0 .0;
    let to = if p.to_height == 0 {
        tip
    } else {
        p.to_height.min(tip)
    };
    if p.from_height > to {
        return Err(invalid("from_height is above to_height"));
    }
    if to - p.from_height > 1_000_000 {
        return Err(invalid("range too large"));
    }
    let mut dist = Vec::with_capacity((to - p.from_height + 1) as usize);
    let mut base = 0;
    let mut h = p.from_height;
    // Block metadata only (no blobs), a chunk of heights per hold of the lock.
    while h <= to {
        let st = node.lock();
        let store = st.chain.store();
        let last = to.min(h.saturating_add(DISTRIBUTION_CHUNK - 1));
        for height in h..=last {
            let meta = store
                .hash_at(Height(height))
                .map_err(internal)?
                .map(|hash| store.block_meta(&hash))
                .transpose()
                .map_err(internal)?
                .flatten()
                .ok_or_else(|| invalid("the chain changed while reading; try again"))?;
            if height == p.from_height {
                base = meta.first_output_index;
            }
            dist.push(if p.cumulative {
                meta.first_output_index + meta.output_count
            } else {
                meta.output_count
            });
        }
        h = last + 1;
    }
    let d = json!({"amount": 0, "start_height": p.from_height, "base": if p.cumulative { 0 } else { base }, "distribution": dist});
    Ok(json!({"status": "OK", "distributions": [d]}))
}

/// Builds the RPC module.
pub fn module(node: Node) -> RpcModule<Node> {
    let mut m = RpcModule::new(node);
    macro_rules! method {
        ($name:literal, $f:expr) => {
            m.register_blocking_method($name, $f).expect(concat!(
                "method ",
                $name,
                " registered once"
            ));
        };
    }
    method!("get_info", |_p, node, _| get_info(&node));
    method!("get_block_count", |_p, node, _| -> RpcResult {
        Ok(json!({"status": "OK", "count": node.lock().chain.block_count()}))
    });
    method!("get_height", |_p, node, _| -> RpcResult {
        let st = node.lock();
        let (h, hash) = st.chain.tip();
        Ok(json!({"status": "OK", "height": h.0 + 1, "hash": hash.to_hex()}))
    });
    method!("get_last_block_header", |_p, node, _| -> RpcResult {
        let tip = node.lock().chain.tip().0;
        Ok(json!({"status": "OK", "block_header": header_at(&node, tip)?}))
    });
    method!("get_block_header_by_height", |p, node, _| -> RpcResult {
        let HeightParam { height } = parse(&p)?;
        let height = height.ok_or_else(|| invalid("height is required"))?;
        Ok(json!({"status": "OK", "block_header": header_at(&node, Height(height))?}))
    });
    method!("get_block_headers_range", |p, node, _| -> RpcResult {
        let RangeParams {
            start_height,
            end_height,
        } = parse(&p)?;
        let (s, e) = (
            start_height.ok_or_else(|| invalid("start_height is required"))?,
            end_height.ok_or_else(|| invalid("end_height is required"))?,
        );
        if s > e || e - s >= MAX_HEADER_RANGE {
            return Err(invalid(format!(
                "need start_height <= end_height and at most {MAX_HEADER_RANGE} headers"
            )));
        }
        let headers = (s..=e)
            .map(|h| header_at(&node, Height(h)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(json!({"status": "OK", "headers": headers}))
    });
    method!("get_block_header_by_hash", |p, node, _| -> RpcResult {
        let HashParam { hash } = parse(&p)?;
        let hash = BlockHash(parse_hash(
            &hash.ok_or_else(|| invalid("hash is required"))?,
            "hash",
        )?);
        let height = node
            .lock()
            .chain
            .store()
            .block_meta(&hash)
            .map_err(internal)?
            .ok_or_else(|| not_found("no main-chain block with that hash"))?
            .height;
        Ok(json!({"status": "OK", "block_header": header_at(&node, height)?}))
    });
    method!("get_block", |p, node, _| -> RpcResult {
        let GetBlockParams { height, hash } = parse(&p)?;
        let height = match (height, hash) {
            (Some(h), None) => Height(h),
            (None, Some(hash)) => {
                let hash = BlockHash(parse_hash(&hash, "hash")?);
                node.lock()
                    .chain
                    .store()
                    .block_meta(&hash)
                    .map_err(internal)?
                    .ok_or_else(|| not_found("no main-chain block with that hash"))?
                    .height
            }
            _ => return Err(invalid("give exactly one of height or hash")),
        };
        let header = header_at(&node, height)?;
        let st = node.lock();
        let (_, _, blob) = st
            .chain
            .block_at(height)
            .map_err(internal)?
            .ok_or_else(|| not_found("block vanished"))?;
        let block = Block::from_bytes(&blob).map_err(internal)?;
        Ok(json!({
            "status": "OK",
            "blob": hex::encode(&blob),
            "block_header": header,
            "miner_tx_hash": block.miner_tx.hash().to_hex(),
            "tx_hashes": block.tx_hashes.iter().map(|h| h.to_hex()).collect::<Vec<_>>(),
        }))
    });
    method!("send_raw_transaction", |p, node, _| send_raw_transaction(
        &node,
        parse(&p)?
    ));
    method!("get_transactions", |p, node, _| get_transactions(
        &node,
        parse(&p)?
    ));
    method!("get_outs", |p, node, _| get_outs(&node, parse(&p)?));
    method!("get_output_distribution", |p, node, _| {
        get_output_distribution(&node, parse(&p)?)
    });
    method!("get_fee_estimate", |_p, node, _| -> RpcResult {
        Ok(
            json!({"status": "OK", "fee_per_byte": node.params.fee_per_byte, "fee": node.params.fee_per_byte}),
        )
    });
    method!("get_transaction_pool_hashes", |_p, node, _| -> RpcResult {
        Ok(
            json!({"status": "OK", "tx_hashes": node.lock().pool.hashes().iter().map(|h| h.to_hex()).collect::<Vec<_>>()}),
        )
    });
    method!("submit_block", |p, node, _| -> RpcResult {
        let blobs: Vec<String> = p.parse().map_err(|e| invalid(e.message().to_owned()))?;
        let [blob] = blobs.as_slice() else {
            return Err(invalid("expected [block_blob_hex]"));
        };
        let blob = hex::decode(blob).map_err(|_| invalid("block blob is not hex"))?;
        match node.submit_block(&blob, &[], true) {
            Ok(_) => Ok(json!({"status": "OK"})),
            Err(e) => Err(invalid(format!("block rejected: {e}"))),
        }
    });
    crate::rpc::service_nodes::register(&mut m);
    method!("generateblocks", |p, node, _| -> RpcResult {
        #[derive(Deserialize, Default)]
        struct P {
            amount_of_blocks: Option<u64>,
            wallet_address: Option<String>,
        }
        let P {
            amount_of_blocks,
            wallet_address,
        } = parse(&p)?;
        if !matches!(
            node.params.difficulty,
            sispop_chain::params::DifficultyMode::Fixed(_)
        ) {
            return Err(invalid(
                "generateblocks is only available on networks with a fixed difficulty (devnet)",
            ));
        }
        let n = amount_of_blocks.ok_or_else(|| invalid("amount_of_blocks is required"))?;
        if n == 0 || n > 100 {
            return Err(invalid("amount_of_blocks must be 1..=100"));
        }
        let addr = sispop_chain::Address::parse(
            &wallet_address.ok_or_else(|| invalid("wallet_address is required"))?,
            node.params,
        )
        .map_err(|e| invalid(format!("wallet_address: {e}")))?;
        let mut hashes = Vec::new();
        for _ in 0..n {
            let t = {
                let st = node.lock();
                st.chain
                    .block_template(
                        &mut rand::rngs::OsRng,
                        &addr,
                        st.pool.candidates(),
                        unix_now(),
                    )
                    .map_err(internal)?
            };
            let mut t = t;
            if !t.mine(1_000_000) {
                return Err(internal("no nonce found"));
            }
            node.submit_block(&t.block.serialize(), &t.txs, true)
                .map_err(|e| internal(format!("generated block rejected: {e}")))?;
            hashes.push(t.block.hash().to_hex());
        }
        Ok(json!({"status": "OK", "height": node.lock().chain.tip().0 .0, "blocks": hashes}))
    });
    method!("stop_daemon", |_p, node, _| -> RpcResult {
        node.request_shutdown();
        Ok(json!({"status": "OK"}))
    });
    m
}

/// Plain oxend-style endpoints and the JSON-RPC method each maps to.
fn plain_method(path: &str) -> Option<&'static str> {
    Some(match path {
        "/send_raw_transaction" | "/sendrawtransaction" => "send_raw_transaction",
        "/get_transactions" | "/gettransactions" => "get_transactions",
        "/get_height" | "/getheight" => "get_height",
        "/get_info" | "/getinfo" => "get_info",
        "/get_outs" => "get_outs",
        "/get_transaction_pool_hashes" => "get_transaction_pool_hashes",
        "/stop_daemon" => "stop_daemon",
        _ => return None,
    })
}

fn respond(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

async fn call_one(module: &RpcModule<Node>, req: &Value, restricted: bool) -> Value {
    if restricted
        && req["method"]
            .as_str()
            .is_some_and(|m| RESTRICTED.contains(&m))
    {
        return json!({"jsonrpc": "2.0", "id": req.get("id").cloned().unwrap_or(Value::Null),
                      "error": {"code": METHOD_NOT_FOUND, "message": "Method not found"}});
    }
    let text = req.to_string();
    match module.raw_json_request(&text, 1).await {
        Ok((resp, _)) => serde_json::from_str(resp.get()).unwrap_or(Value::Null),
        Err(e) => {
            json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32600, "message": format!("invalid request: {e}")}})
        }
    }
}

async fn handle(
    module: RpcModule<Node>,
    restricted: bool,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != Method::POST {
        return Ok(respond(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"error": "use POST"}).to_string(),
        ));
    }
    let path = req.uri().path().to_owned();
    let body = match Limited::new(req.into_body(), MAX_REQUEST_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Ok(respond(
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({"error": "request body too large"}).to_string(),
            ))
        }
    };
    let parsed: Result<Value, _> = if body.is_empty() {
        Ok(json!({}))
    } else {
        crate::node::workers::parse_json(body.to_vec(), 0).await
    };
    let Ok(doc) = parsed else {
        let err = json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "parse error: body is not JSON"}});
        return Ok(respond(StatusCode::OK, err.to_string()));
    };
    if let Some(method) = plain_method(&path) {
        let req = json!({"jsonrpc": "2.0", "id": 0, "method": method, "params": doc});
        let resp = call_one(&module, &req, restricted).await;
        return Ok(match (resp.get("result"), resp.get("error")) {
            (Some(r), _) => respond(StatusCode::OK, r.to_string()),
            (None, Some(e)) => respond(
                StatusCode::OK,
                json!({"status": "Failed", "error": e}).to_string(),
            ),
            _ => respond(StatusCode::INTERNAL_SERVER_ERROR, "{}".into()),
        });
    }
    if path != "/json_rpc" && path != "/" {
        return Ok(respond(
            StatusCode::NOT_FOUND,
            json!({"error": format!("no endpoint {path}")}).to_string(),
        ));
    }
    let out = match doc {
        Value::Array(batch) => {
            if batch.is_empty() || batch.len() > MAX_BATCH {
                json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32600, "message": format!("batches must hold 1 to {MAX_BATCH} calls")}})
            } else {
                let mut v = Vec::with_capacity(batch.len());
                for r in &batch {
                    v.push(call_one(&module, r, restricted).await);
                }
                Value::Array(v)
            }
        }
        single => call_one(&module, &single, restricted).await,
    };
    Ok(respond(StatusCode::OK, out.to_string()))
}

/// Serves RPC on `listener` until shutdown; `restriction` says which callers see only the
/// public methods.
pub async fn serve(node: Node, listener: TcpListener, restriction: Restriction) {
    let module = module(node.clone());
    let mut stop = node.shutdown.subscribe();
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    info!(?addr, ?restriction, "JSON-RPC listening at /json_rpc");
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => break,
        };
        let (stream, peer) = match accepted {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            debug!(%peer, "RPC connection refused: too many open");
            continue;
        };
        let module = module.clone();
        let restricted = restriction.applies_to(peer.ip());
        tokio::spawn(async move {
            let _permit = permit;
            let svc = service_fn(move |req| handle(module.clone(), restricted, req));
            let conn = http1::Builder::new()
                .header_read_timeout(HEADER_TIMEOUT)
                .timer(hyper_util::rt::TokioTimer::new())
                .serve_connection(TokioIo::new(stream), svc);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(300), conn).await;
        });
    }
    info!("JSON-RPC stopped");
}
