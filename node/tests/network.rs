//! Nodes on one machine, talking over libp2p on 127.0.0.1: two separately built chains meet
//! and the lighter side reorganises (its service node list with it), a killed node catches up
//! after restart, and a misbehaving in-process peer is refused and banned.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sispop_chain::{Network, NetworkParams, COIN};
use sispop_wallet::{Account, Daemon, Wallet};

const SISPOPD: &str = env!("CARGO_BIN_EXE_sispopd");

fn port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn params() -> &'static NetworkParams {
    NetworkParams::get(Network::Devnet)
}

struct Proc {
    child: Child,
    rpc: u16,
    p2p: u16,
    d: Daemon,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn spawn(dir: &Path, name: &str, rpc: u16, p2p: u16, peers: &[u16]) -> Proc {
    spawn_args(dir, name, rpc, p2p, peers, None, &[]).await
}

async fn spawn_args(
    dir: &Path,
    name: &str,
    rpc: u16,
    p2p: u16,
    peers: &[u16],
    mine_to: Option<&Account>,
    extra: &[&str],
) -> Proc {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{name}.log")))
        .expect("log");
    let mut cmd = Command::new(SISPOPD);
    cmd.args([
        "--devnet",
        "--p2p-bind-ip",
        "127.0.0.1",
        "--rpc-bind-port",
        &rpc.to_string(),
        "--p2p-bind-port",
        &p2p.to_string(),
        "--data-dir",
    ])
    .arg(dir.join(name));
    for p in peers {
        cmd.arg("--add-peer").arg(format!("127.0.0.1:{p}"));
    }
    if let Some(a) = mine_to {
        cmd.arg("--mine-to").arg(a.address().to_string(params()));
    }
    cmd.args(extra);
    let child = cmd
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn");
    let d = Daemon::new(&format!("http://127.0.0.1:{rpc}")).expect("client");
    let deadline = Instant::now() + Duration::from_secs(20);
    while d.call("get_info", json!({})).await.is_err() {
        assert!(Instant::now() < deadline, "{name} did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Proc { child, rpc, p2p, d }
}

async fn generate(d: &Daemon, n: u64, to: &Account) {
    d.call(
        "generateblocks",
        json!({"amount_of_blocks": n, "wallet_address": to.address().to_string(params())}),
    )
    .await
    .expect("generateblocks");
}

async fn tip(d: &Daemon) -> (u64, String) {
    let i = d.call("get_info", json!({})).await.expect("info");
    (
        i["height"].as_u64().unwrap_or(0),
        i["top_block_hash"].as_str().unwrap_or("").to_owned(),
    )
}

async fn wait_same_tip(nodes: &[&Proc], secs: u64) -> (u64, String) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let mut tips = Vec::new();
        for n in nodes {
            tips.push(tip(&n.d).await);
        }
        if tips.windows(2).all(|w| w[0] == w[1]) {
            return tips.remove(0);
        }
        assert!(
            Instant::now() < deadline,
            "no agreement within {secs} s: {tips:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn sn_list(d: &Daemon) -> Value {
    d.call("get_service_nodes", json!({})).await.expect("rpc")["service_node_states"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_chains_converge_on_the_heavier_and_the_sn_list_follows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (pa, pb, pc) = (port(), port(), port());
    let a = spawn(dir.path(), "a", port(), pa, &[]).await;
    let b = spawn(dir.path(), "b", port(), pb, &[]).await;

    // A: 30 blocks and a service node registration. B: 45 blocks, no service nodes.
    let alice = Account::generate();
    generate(&a.d, 30, &alice).await;
    let mut w = Wallet::new(
        Account::from_mnemonic(&alice.mnemonic()).expect("phrase"),
        params(),
    );
    w.refresh(&a.d).await.expect("refresh");
    let sn_key = sispop_chain::crypto::random_scalar(&mut rand::rngs::OsRng);
    let reg = sispop_staking::build::sign_registration(
        &mut rand::rngs::OsRng,
        &sn_key,
        0,
        &[(alice.address(), 100 * COIN)],
        19,
    );
    let cmd = sispop_staking::command::format_command(
        &reg,
        &sispop_chain::crypto::public_from_secret(&sn_key),
        params(),
    );
    let words: Vec<&str> = cmd.split_whitespace().skip(1).collect();
    w.stake(&a.d, None, None, Some(&words))
        .await
        .expect("registration");
    generate(&a.d, 2, &alice).await;
    assert_eq!(
        sn_list(&a.d).await.as_array().map(Vec::len),
        Some(1),
        "A has the node"
    );
    generate(&b.d, 45, &Account::generate()).await;

    // C connects to both: everyone ends on B's heavier chain; A's node is rolled back.
    let c = spawn(dir.path(), "c", port(), pc, &[pa, pb]).await;
    let (h, hash) = wait_same_tip(&[&a, &b, &c], 60).await;
    assert_eq!((h, hash.clone()), tip(&b.d).await);
    assert_eq!(h, 46);
    assert_eq!(
        sn_list(&a.d).await,
        json!([]),
        "A's service node list follows the reorg"
    );
    assert_eq!(sn_list(&a.d).await, sn_list(&b.d).await);

    // Kill C, extend the chain, restart C: it catches up.
    let c_p2p = c.p2p;
    drop(c);
    generate(&b.d, 20, &Account::generate()).await;
    let c = spawn(dir.path(), "c", port(), c_p2p, &[pa, pb]).await;
    let (h2, _) = wait_same_tip(&[&a, &b, &c], 60).await;
    assert_eq!(h2, 66);
    let info = c.d.call("get_info", json!({})).await.expect("info");
    assert!(info["outgoing_connections_count"].as_u64().unwrap_or(0) >= 1);
    let _ = (a.rpc, b.rpc);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_racing_miners_fork_and_converge() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (pa, pb, pc) = (port(), port(), port());
    let a = spawn_args(
        dir.path(),
        "a",
        port(),
        pa,
        &[pc],
        Some(&Account::generate()),
        &[],
    )
    .await;
    let b = spawn_args(
        dir.path(),
        "b",
        port(),
        pb,
        &[pc],
        Some(&Account::generate()),
        &[],
    )
    .await;
    let c = spawn(dir.path(), "c", port(), pc, &[pa, pb]).await;
    // Both mine on the same 2 s schedule, so they find competing blocks; race until at least
    // one block has lost (more blocks mined than the chain holds).
    let mined = |dir: &Path| -> u64 {
        ["a", "b"]
            .iter()
            .map(|n| {
                std::fs::read_to_string(dir.join(format!("{n}.log")))
                    .unwrap_or_default()
                    .matches("mined block")
                    .count() as u64
            })
            .sum()
    };
    let start = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (h, _) = tip(&a.d).await;
        if start.elapsed() > Duration::from_secs(10) && mined(dir.path()) >= h {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no competing blocks in 60 s of racing"
        );
    }
    let b_p2p = b.p2p;
    drop(b);
    // B comes back without mining; everyone converges on A's chain.
    let b = spawn(dir.path(), "b", port(), b_p2p, &[pc]).await;
    let (h, _) = wait_same_tip(&[&a, &b, &c], 60).await;
    assert!(h >= 4, "the race produced a chain ({h})");
    let logs: String = ["a", "b", "c"]
        .iter()
        .map(|n| std::fs::read_to_string(dir.path().join(format!("{n}.log"))).unwrap_or_default())
        .collect();
    let reorgs = logs.matches("reorganised onto a heavier chain").count();
    let side = logs.matches("mined block").count() as u64;
    println!("race: height {h}, {side} blocks mined by both, {reorgs} reorganisations logged");
    // The final chain holds h − 1 mined blocks; more mined than that means competing blocks
    // (forks) happened and lost.
    assert!(
        side >= h,
        "the miners raced: {side} mined for a chain of {h}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misbehaving_peer_is_refused_and_banned() {
    use sispopd::p2p::wire::{Request, Response, WireBlock};
    use sispopd::p2p::{self, NetCommand, NetConfig};

    let dir = tempfile::tempdir().expect("tempdir");
    let target_p2p = port();
    // A service node (not registered: it refuses storage requests, as a registered one does
    // requests from nodes that are not), with its storage protocol and onion links up.
    let storage_port = port().to_string();
    let target = spawn_args(
        dir.path(),
        "target",
        port(),
        target_p2p,
        &[],
        None,
        &[
            "--service-node",
            "--storage-bind-ip",
            "127.0.0.1",
            "--storage-port",
            &storage_port,
        ],
    )
    .await;
    generate(&target.d, 5, &Account::generate()).await;

    // An in-process node (not a service node) connected to the target.
    let chain = sispopd::node::Chain::open_with(
        params(),
        &dir.path().join("evil"),
        sispop_staking::ServiceNodeList::new(params()),
    )
    .expect("chain");
    let node = sispopd::node::Node::new(chain, None, None);
    let key = libp2p::identity::Keypair::generate_ed25519();
    let cfg = NetConfig {
        listen: format!("/ip4/127.0.0.1/tcp/{}", port())
            .parse()
            .expect("addr"),
        peers: vec![format!("/ip4/127.0.0.1/tcp/{target_p2p}")
            .parse()
            .expect("addr")],
        sync_interval: Duration::from_millis(500),
    };
    let (handle, _task) = p2p::start(node.clone(), key, cfg).expect("p2p");
    let target_peer: libp2p::PeerId = target.d.call("get_info", json!({})).await.expect("info")
        ["p2p_peer_id"]
        .as_str()
        .expect("peer id")
        .parse()
        .expect("peer id");

    // It syncs the target's chain (it is a normal peer so far).
    let deadline = Instant::now() + Duration::from_secs(30);
    while node.lock().chain.tip().0 .0 < 5 {
        assert!(Instant::now() < deadline, "adversary did not sync");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // SN-only protocol: refused, it is not an active service node.
    let (tx, rx) = tokio::sync::oneshot::channel();
    handle
        .tx
        .send(NetCommand::SnRequest {
            peer: target_peer,
            addr: None,
            request: Request::SnPing { height: 5 },
            reply: tx,
        })
        .expect("send");
    let answer = tokio::time::timeout(Duration::from_secs(20), rx)
        .await
        .expect("answer in time")
        .expect("answer");
    assert_eq!(
        answer,
        Response::Refused("not an active service node".into())
    );
    let info = target.d.call("get_info", json!({})).await.expect("info");
    assert_eq!(info["sn_only_refusals"], 1);

    // The storage protocol: refused before the request is read. A request that never ends
    // (64 KiB of a push, then nothing) still gets its 403 at once.
    {
        use futures::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut control = handle.link.clone();
        let protocol = libp2p::StreamProtocol::new("/sispop/storage/1");
        let mut s = control
            .open_stream(target_peer, protocol)
            .await
            .expect("a storage stream");
        let mut push = vec![3u8];
        push.extend_from_slice(&[b' '; 64 * 1024]);
        s.write_all(&push).await.expect("written");
        s.flush().await.expect("flushed");
        let mut answer = [0u8; 2];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut answer))
            .await
            .expect("refused without waiting for the rest of the request")
            .expect("an answer");
        assert_eq!(u16::from_be_bytes(answer), 403);
        let info = target.d.call("get_info", json!({})).await.expect("info");
        assert_eq!(info["sn_only_refusals"], 2);
        // An onion link: closed as soon as it is opened.
        let protocol = libp2p::StreamProtocol::new("/sispop/sn-link/2");
        let mut link = control
            .open_stream(target_peer, protocol)
            .await
            .expect("a link stream");
        let mut greeting = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), link.read_to_end(&mut greeting))
            .await
            .expect("the link is closed at once");
        assert!(
            read.is_err() || greeting.is_empty(),
            "no hello for a node that is not a service node: {greeting:?}"
        );
    }

    // A block paying its miner far too much: refused, and the sender is banned.
    let bad = {
        let st = node.lock();
        let mut t = st
            .chain
            .block_template(
                &mut rand::rngs::OsRng,
                &Account::generate().address(),
                vec![],
                sispopd::node::unix_now(),
            )
            .expect("template");
        t.block.miner_tx.outputs[0].amount = Some(1_000_000 * COIN);
        assert!(t.mine(100));
        WireBlock {
            blob: t.block.serialize(),
            txs: vec![],
        }
    };
    let before = tip(&target.d).await;
    until_banned(&target, 1, "the invalid block's sender", || {
        handle
            .tx
            .send(NetCommand::BroadcastBlock(bad.clone()))
            .expect("send");
    })
    .await;
    assert_eq!(tip(&target.d).await, before, "the target kept its chain");

    // Three more adversaries: garbage as a block, a flood on a topic, an oversized request.
    let garbage = adversary(&dir.path().join("evil2"), target_p2p).await;
    until_banned(&target, 2, "the garbage sender", || {
        garbage
            .tx
            .send(NetCommand::BroadcastBlock(WireBlock {
                blob: vec![0xff; 64],
                txs: vec![],
            }))
            .expect("send");
    })
    .await;
    let flooder = adversary(&dir.path().join("evil3"), target_p2p).await;
    let mut n = 0u32;
    until_banned(&target, 3, "the flooder", || {
        for _ in 0..50 {
            n += 1;
            // Well-formed votes for a height far ahead: each alone is ignored, not punished.
            let vote = sispop_testing::Vote {
                height: 1_000_000 + u64::from(n),
                worker_index: 0,
                state: sispop_testing::NewState::Decommission,
                reason: 1,
                validator_index: 0,
                signature: sispop_chain::crypto::Signature([0; 64]),
            };
            flooder
                .tx
                .send(NetCommand::Publish(p2p::VOTES_TOPIC.into(), vote.encode()))
                .expect("send");
        }
    })
    .await;
    assert!(
        n > p2p::FLOOD_LIMIT,
        "only a real flood is banned ({n} messages)"
    );
    let big = adversary(&dir.path().join("evil4"), target_p2p).await;
    until_banned(&target, 4, "the oversized request's sender", || {
        big.tx
            .send(NetCommand::RawSyncRequest(
                target_peer,
                vec![1u8; 64 * 1024],
            ))
            .expect("send");
    })
    .await;

    // An uptime proof whose Ed25519 signature is not the key's, and a malformed vote.
    let prover = adversary(&dir.path().join("evil5"), target_p2p).await;
    let x = sispop_chain::crypto::random_scalar(&mut rand::rngs::OsRng);
    let pk = sispop_chain::crypto::public_from_secret(&x);
    let proof = sispop_testing::UptimeProof {
        pubkey: pk,
        pubkey_ed25519: pk,
        public_ip: std::net::Ipv4Addr::LOCALHOST,
        storage_https_port: 22020,
        storage_omq_port: 0,
        quorumnet_port: 20000,
        version: [0, 1, 0],
        storage_version: [0, 1, 0],
        lokinet_version: [0, 0, 0],
        timestamp: sispopd::node::unix_now(),
    };
    let forged = proof.sign(&mut rand::rngs::OsRng, &x, &[7u8; 32]);
    until_banned(&target, 5, "the forged proof's sender", || {
        prover
            .tx
            .send(NetCommand::Publish(
                p2p::PROOFS_TOPIC.into(),
                forged.clone(),
            ))
            .expect("send");
    })
    .await;
    let voter = adversary(&dir.path().join("evil6"), target_p2p).await;
    until_banned(&target, 6, "the malformed vote's sender", || {
        voter
            .tx
            .send(NetCommand::Publish(
                p2p::VOTES_TOPIC.into(),
                b"d1:gi2e1:hi5ee".to_vec(),
            ))
            .expect("send");
    })
    .await;
    // Transactions travel on the anonymous gossip: junk there bans its relay just the same.
    let spammer = adversary(&dir.path().join("evil7"), target_p2p).await;
    until_banned(&target, 7, "the junk transaction's relay", || {
        spammer
            .tx
            .send(NetCommand::BroadcastTx(vec![4, 0, 1, 2, 3]))
            .expect("send");
    })
    .await;

    assert_eq!(tip(&target.d).await, before, "the target kept its chain");
    let log = std::fs::read_to_string(dir.path().join("target.log")).expect("log");
    for reason in [
        "invalid block",
        "does not decode",
        "gossip flood",
        "oversized sync request",
        "invalid uptime proof: uptime proof Ed25519 signature does not verify",
        "invalid vote: malformed vote",
        "invalid transaction",
    ] {
        assert!(log.contains(reason), "the ban reason {reason:?} is logged");
    }
}

/// Repeats `misbehave` until the target reports at least `bans` banned peers (30 s at most).
async fn until_banned(target: &Proc, bans: u64, who: &str, mut misbehave: impl FnMut()) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        misbehave();
        let info = target.d.call("get_info", json!({})).await.expect("info");
        if info["banned_peers"].as_u64().unwrap_or(0) >= bans {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{who} was not banned within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An in-process, non-service node connected to `target_p2p`; returns its network handle.
async fn adversary(dir: &Path, target_p2p: u16) -> sispopd::p2p::NetHandle {
    let chain = sispopd::node::Chain::open_with(
        params(),
        dir,
        sispop_staking::ServiceNodeList::new(params()),
    )
    .expect("chain");
    let node = sispopd::node::Node::new(chain, None, None);
    let cfg = sispopd::p2p::NetConfig {
        listen: format!("/ip4/127.0.0.1/tcp/{}", port())
            .parse()
            .expect("addr"),
        peers: vec![format!("/ip4/127.0.0.1/tcp/{target_p2p}")
            .parse()
            .expect("addr")],
        sync_interval: Duration::from_millis(500),
    };
    let (handle, task) =
        sispopd::p2p::start(node, libp2p::identity::Keypair::generate_ed25519(), cfg).expect("p2p");
    std::mem::forget(task);
    // Give the gossip mesh a moment to form.
    tokio::time::sleep(Duration::from_secs(2)).await;
    handle
}

/// Forks 40 and 90 blocks deep (depths at which a doubling back-off from the tip skips past
/// the fork point forever) resolve: the node on the lighter branch finds the fork point with
/// one block locator, walks the heavier branch from it and reorganises onto it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_forks_resolve_through_a_block_locator() {
    for depth in [40u64, 90] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (pa, pb) = (port(), port());
        let a = spawn(dir.path(), "a", port(), pa, &[]).await;
        generate(&a.d, 10, &Account::generate()).await;
        let b = spawn(dir.path(), "b", port(), pb, &[pa]).await;
        let (shared, _) = wait_same_tip(&[&a, &b], 30).await;
        assert_eq!(shared, 11);
        drop(b);
        // Apart: A mines `depth` blocks, B (alone) `depth + 5`, so B's branch is heavier.
        generate(&a.d, depth, &Account::generate()).await;
        let b = spawn(dir.path(), "b", port(), pb, &[]).await;
        generate(&b.d, depth + 5, &Account::generate()).await;
        let heavier = tip(&b.d).await;
        drop(b);
        let started = Instant::now();
        let b = spawn(dir.path(), "b", port(), pb, &[pa]).await;
        let joined = wait_same_tip(&[&a, &b], 60).await;
        assert_eq!(
            joined, heavier,
            "A reorganised {depth} blocks onto B's branch"
        );
        println!(
            "fork {depth} deep resolved in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
}

/// A peer that claims a million more blocks and 1000× the work (`--dev-fault lie-tip`) but
/// has a short chain of its own is struck for serving nothing past it, then banned, and the
/// joining node completes sync from the honest peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_lying_about_its_work_is_banned_and_sync_completes_from_the_honest_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (pa, pl) = (port(), port());
    let a = spawn(dir.path(), "a", port(), pa, &[]).await;
    generate(&a.d, 60, &Account::generate()).await;
    let liar = spawn_args(
        dir.path(),
        "liar",
        port(),
        pl,
        &[],
        None,
        &["--dev-fault", "lie-tip"],
    )
    .await;
    generate(&liar.d, 3, &Account::generate()).await;
    let honest = tip(&a.d).await;
    let started = Instant::now();
    let n = spawn(dir.path(), "n", port(), port(), &[pl, pa]).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    let (mut synced_at, mut banned_at) = (None, None);
    while synced_at.is_none() || banned_at.is_none() {
        assert!(
            Instant::now() < deadline,
            "in 90 s: synced {synced_at:?}, liar banned {banned_at:?}"
        );
        if synced_at.is_none() && tip(&n.d).await == honest {
            synced_at = Some(started.elapsed());
        }
        let info = n.d.call("get_info", json!({})).await.expect("info");
        if banned_at.is_none() && info["banned_peers"].as_u64().unwrap_or(0) >= 1 {
            banned_at = Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("synced in {synced_at:?}, liar banned after {banned_at:?}");
    let log = std::fs::read_to_string(dir.path().join("n.log")).expect("log");
    assert!(
        log.contains("claimed more work than it served"),
        "the ban names the lie"
    );
    assert_eq!(tip(&n.d).await, honest, "still on the honest chain");
    drop(liar);
}

/// Peer exchange: B and C know only the seed A; each learns the other's address from A and
/// connects to it, so a node knows more of the network than its seeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_discover_peers_beyond_their_seeds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pa = port();
    let a = spawn(dir.path(), "a", port(), pa, &[]).await;
    let b = spawn(dir.path(), "b", port(), port(), &[pa]).await;
    let c = spawn(dir.path(), "c", port(), port(), &[pa]).await;
    let connections = |info: &Value| {
        info["incoming_connections_count"].as_u64().unwrap_or(0)
            + info["outgoing_connections_count"].as_u64().unwrap_or(0)
    };
    let started = Instant::now();
    let deadline = started + Duration::from_secs(60);
    loop {
        let ib = b.d.call("get_info", json!({})).await.expect("info");
        let ic = c.d.call("get_info", json!({})).await.expect("info");
        // Each is connected to A and to the other.
        if connections(&ib) >= 2 && connections(&ic) >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B and C did not find each other in 60 s: {ib} {ic}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!("discovered in {:.1} s", started.elapsed().as_secs_f64());
    drop(a);
}
