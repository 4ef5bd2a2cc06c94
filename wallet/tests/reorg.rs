//! A reorg that happens while the wallet scans is caught by `prev_id` linkage: a block that
//! does not link to the one scanned below it sends the wallet back to find the fork.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use jsonrpsee::server::{RpcModule, Server};
use serde_json::{json, Value};
use sispop_chain::blockchain::genesis_block;
use sispop_chain::{Block, BlockHash, Network, NetworkParams};
use sispop_wallet::{Account, Daemon, Wallet};

/// A chain of `n` blocks on genesis; `fork` marks the branch (distinct nonces, so hashes).
fn chain(n: u32, fork: u32) -> Vec<Block> {
    let params = NetworkParams::get(Network::Devnet);
    let mut out = vec![genesis_block(params)];
    for i in 1..n {
        let mut b = out[0].clone();
        b.header.prev_id = out[(i - 1) as usize].hash();
        b.header.nonce = fork * 1000 + i;
        out.push(b);
    }
    out
}

struct Mock {
    a: Vec<Block>,
    b: Vec<Block>,
    /// Serve branch B from now on.
    switched: AtomicBool,
    /// How much of A is out.
    a_len: AtomicUsize,
    /// Switch to B right after the next header answer (a reorg between two calls).
    switch_after_header: AtomicBool,
}

impl Mock {
    fn chain(&self) -> &[Block] {
        if self.switched.load(Ordering::SeqCst) {
            &self.b
        } else {
            &self.a[..self.a_len.load(Ordering::SeqCst)]
        }
    }
}

async fn serve(mock: Arc<Mock>) -> (String, jsonrpsee::server::ServerHandle) {
    let server = Server::builder().build("127.0.0.1:0").await.expect("bind");
    let addr = server.local_addr().expect("addr");
    let mut m = RpcModule::new(mock);
    m.register_method(
        "get_info",
        |_, m, _| json!({"height": m.chain().len(), "status": "OK"}),
    )
    .expect("reg");
    m.register_method("get_block_header_by_height", |p, m, _| {
        let v: Value = p.parse().unwrap_or_default();
        let h = v["height"].as_u64().unwrap_or(0) as usize;
        let hash = m.chain().get(h).map(|b| b.hash().to_hex());
        if m.switch_after_header.swap(false, Ordering::SeqCst) {
            m.switched.store(true, Ordering::SeqCst);
        }
        json!({"block_header": {"hash": hash}, "status": "OK"})
    })
    .expect("reg");
    m.register_method("get_block", |p, m, _| {
        let v: Value = p.parse().unwrap_or_default();
        let h = v["height"].as_u64().unwrap_or(0) as usize;
        json!({"blob": m.chain().get(h).map(|b| hex::encode(b.serialize())), "status": "OK"})
    })
    .expect("reg");
    m.register_method("get_transactions", |p, m, _| {
        let v: Value = p.parse().unwrap_or_default();
        let miner = &m.a[0].miner_tx;
        let txs: Vec<Value> = v["txs_hashes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|h| h.as_str() == Some(miner.hash().to_hex().as_str()))
            .map(|h| {
                json!({"tx_hash": h, "as_hex": hex::encode(miner.serialize()),
                       "output_indices": (0..miner.outputs.len()).collect::<Vec<_>>()})
            })
            .collect();
        json!({"txs": txs, "missed_tx": [], "status": "OK"})
    })
    .expect("reg");
    let handle = server.start(m);
    (format!("http://{addr}"), handle)
}

#[tokio::test]
async fn a_reorg_between_the_tip_check_and_the_scan_is_caught_by_linkage() {
    // A: 4 blocks out of 7; B: forks after genesis and is 7 long.
    let mock = Arc::new(Mock {
        a: chain(7, 1),
        a_len: AtomicUsize::new(4),
        b: chain(7, 2),
        switched: AtomicBool::new(false),
        switch_after_header: AtomicBool::new(false),
    });
    let (url, handle) = serve(mock.clone()).await;
    let daemon = Daemon::new(&url).expect("daemon");
    let params = NetworkParams::get(Network::Devnet);
    let mut w = Wallet::new(Account::generate(), params);
    assert_eq!(w.refresh(&daemon).await.expect("scan A"), 4);
    assert_eq!(w.cache.hashes.get(&3), Some(&mock.a[3].hash()));
    // A grows to 7; the wallet checks its tip (A3, still current), then the chain switches to
    // B before it asks for block 4: B4 does not link to A3. Without the linkage check the
    // wallet would keep A1..A3 under B4..B6.
    mock.a_len.store(7, Ordering::SeqCst);
    mock.switch_after_header.store(true, Ordering::SeqCst);
    assert_eq!(w.refresh(&daemon).await.expect("refresh"), 7);
    assert!(mock.switched.load(Ordering::SeqCst));
    assert_eq!(w.cache.next_height, 7);
    let expect: Vec<BlockHash> = mock.b.iter().map(Block::hash).collect();
    for (h, hash) in expect.iter().enumerate() {
        assert_eq!(w.cache.hashes.get(&(h as u64)), Some(hash), "height {h}");
    }
    handle.stop().ok();
}
