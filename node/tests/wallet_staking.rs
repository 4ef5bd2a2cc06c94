//! A service node's life on a devnet daemon, driven through the wallet library and RPC:
//! mining, a transfer, restoring a wallet from its phrase, registration with the daemon's
//! `register_service_node` command, the `get_service_nodes` fields, unlock, expiry and the
//! stake becoming spendable again.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sispop_chain::{Atomic, Network, NetworkParams, COIN};
use sispop_wallet::{Account, Daemon, Wallet};

const SISPOPD: &str = env!("CARGO_BIN_EXE_sispopd");

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn params() -> &'static NetworkParams {
    NetworkParams::get(Network::Devnet)
}

async fn generate(d: &Daemon, n: u64, to: &Account) -> u64 {
    let r = d
        .call(
            "generateblocks",
            json!({"amount_of_blocks": n, "wallet_address": to.address().to_string(params())}),
        )
        .await
        .expect("generateblocks");
    r["height"].as_u64().expect("height")
}

async fn sn_state(d: &Daemon) -> Vec<Value> {
    d.call("get_service_nodes", json!({})).await.expect("rpc")["service_node_states"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wallet_transfer_restore_register_unlock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let log = std::fs::File::create(dir.path().join("log")).expect("log");
    let _p = Proc(
        Command::new(SISPOPD)
            .args([
                "--devnet",
                "--service-node",
                "--rpc-bind-port",
                &port.to_string(),
                "--data-dir",
            ])
            .arg(dir.path().join("data"))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn"),
    );
    let d = Daemon::new(&format!("http://127.0.0.1:{port}")).expect("client");
    let deadline = Instant::now() + Duration::from_secs(20);
    while d.call("get_info", json!({})).await.is_err() {
        assert!(Instant::now() < deadline, "daemon did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let alice_keys = Account::generate();
    let phrase = alice_keys.mnemonic();
    let mut alice = Wallet::new(Account::from_mnemonic(&phrase).expect("phrase"), params());
    let mut bob = Wallet::new(Account::generate(), params());
    generate(&d, 40, &alice_keys).await;
    alice.refresh(&d).await.expect("refresh");
    let locked = alice.locked_key_images(&d).await.expect("locked");
    let b = alice.balance(&locked);
    assert_eq!(b.total, Atomic(40 * 16 * COIN));
    assert!(
        b.unlocked.0 > 0 && b.unlocked < b.total,
        "recent coinbase outputs are still locked: {b:?}"
    );

    // A transfer, then Bob sees it.
    let (_, fee) = alice
        .transfer(&d, &bob.address(), 20 * COIN)
        .await
        .expect("transfer");
    generate(&d, 1, &Account::generate()).await;
    bob.refresh(&d).await.expect("refresh");
    assert_eq!(bob.balance(&Default::default()).total, Atomic(20 * COIN));
    alice.refresh(&d).await.expect("refresh");
    let after = alice.balance(&alice.locked_key_images(&d).await.expect("locked"));
    assert_eq!(after.total, Atomic(40 * 16 * COIN - 20 * COIN - fee));

    // Restoring from the phrase gives the same address and balance.
    let mut restored = Wallet::new(Account::from_mnemonic(&phrase).expect("phrase"), params());
    assert_eq!(restored.address(), alice.address());
    restored.refresh(&d).await.expect("refresh");
    assert_eq!(
        restored.balance(&Default::default()),
        alice.balance(&Default::default())
    );

    // Register the daemon's service node with the command it prints.
    let cmd = d
        .call("get_service_node_registration_cmd", json!({"operator_cut": "100%", "contributions": [{"address": alice.address().to_string(params()), "amount": 100 * COIN}]}))
        .await
        .expect("registration cmd")["registration_cmd"]
        .as_str()
        .expect("cmd")
        .to_owned();
    let words: Vec<&str> = cmd.split_whitespace().skip(1).collect();
    let (_, _, sn) = alice
        .stake(&d, None, None, Some(&words))
        .await
        .expect("register");
    generate(&d, 1, &Account::generate()).await;
    let states = sn_state(&d).await;
    assert_eq!(states.len(), 1);
    let e = &states[0];
    assert_eq!(e["service_node_pubkey"], sn.to_hex());
    assert_eq!(e["active"], true);
    assert_eq!(e["funded"], true);
    assert_eq!(e["requested_unlock_height"], 0);
    assert_eq!(e["contributors"][0]["amount"], 100 * COIN);
    assert_eq!(
        e["contributors"][0]["address"],
        alice.address().to_string(params())
    );
    assert_ne!(e["swarm_id"], u64::MAX);
    let own = d
        .call("get_service_node_status", json!({}))
        .await
        .expect("status");
    assert_eq!(
        own["service_node_state"]["service_node_pubkey"],
        sn.to_hex()
    );
    alice.refresh(&d).await.expect("refresh");
    let locked = alice.locked_key_images(&d).await.expect("locked");
    assert_eq!(alice.balance(&locked).staked, Atomic(100 * COIN));

    // Unlock: the node expires after the unlock period; the stake becomes spendable.
    alice.request_unlock(&d, sn).await.expect("unlock");
    let h = generate(&d, 1, &Account::generate()).await;
    let states = sn_state(&d).await;
    assert_eq!(
        states[0]["requested_unlock_height"],
        h + params().stake_unlock_blocks
    );
    assert!(
        alice.request_unlock(&d, sn).await.is_err(),
        "one unlock per node"
    );
    generate(&d, params().stake_unlock_blocks + 1, &Account::generate()).await;
    assert!(sn_state(&d).await.is_empty(), "expired");
    alice.refresh(&d).await.expect("refresh");
    let locked = alice.locked_key_images(&d).await.expect("locked");
    let b = alice.balance(&locked);
    assert_eq!(b.staked, Atomic(0));
    let everything = b.unlocked.0 - 10_000_000;
    alice
        .transfer(&d, &bob.address(), everything)
        .await
        .expect("the unlocked stake is spendable");
}
