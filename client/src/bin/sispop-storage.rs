//! `sispop-storage`: store and retrieve messages for an account on the swarm that owns it, to
//! check a node by hand. The account is a Session id made from an Ed25519 seed.
//!
//! ```sh
//! sispop-storage keygen
//! sispop-storage --daemon http://127.0.0.1:38857 --seed <hex> store "hello"
//! sispop-storage --daemon http://127.0.0.1:38857 --seed <hex> retrieve
//! sispop-storage --daemon http://127.0.0.1:38857 --seed <hex> onion store "hi"
//! ```

use std::process::ExitCode;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use clap::{Parser, Subcommand};
use ed25519_dalek::{Signer, SigningKey};
use rand::seq::SliceRandom as _;
use serde_json::{json, Value};
use sispop_client::storage::{post, swarm};

#[derive(Parser)]
#[command(
    name = "sispop-storage",
    about = "Store and retrieve messages on a Sispop swarm"
)]
struct Cli {
    /// JSON-RPC URL of any daemon, used to find the swarm.
    #[arg(long, global = true, default_value = "http://127.0.0.1:30000")]
    daemon: String,
    /// The account's Ed25519 seed (64 hex); `keygen` makes one.
    #[arg(long, global = true)]
    seed: Option<String>,
    /// Namespace.
    #[arg(
        long,
        global = true,
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    namespace: i16,
    /// Ask only the swarm member whose Ed25519 key starts with this hex.
    #[arg(long, global = true)]
    node: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print a new seed and its Session id.
    Keygen,
    /// Store a message (signed, so any namespace works) on one member of the swarm.
    Store {
        /// The message text.
        message: String,
        /// Time to live in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
        /// Send it inside a one-request `sequence`, as Session clients often do (the answer is
        /// then `{"results": [{"code", "body"}]}`).
        #[arg(long)]
        sequence: bool,
    },
    /// Retrieve the account's messages from a member of the swarm.
    Retrieve {
        /// Ask every member and print one line per member: `member <ed25519> <ip:port>
        /// <status> <count> <hash,hash,...>` (exit status 1 unless every member answered 200).
        #[arg(long)]
        every: bool,
    },
    /// Send a request through a fresh onion path of service nodes whose last node is a member
    /// of the account's swarm (`/onion_req/v2` at the first); print the path and the
    /// decrypted answer.
    Onion {
        #[command(subcommand)]
        what: OnionCmd,
        /// Layer encryption: `xchacha20` or `aes-gcm`.
        #[arg(long, default_value = "xchacha20")]
        enc: String,
        /// Nodes in the path (the last one runs the request).
        #[arg(long, default_value_t = 3)]
        hops: usize,
        /// The network's AES-GCM key salt (`SISPOP`; an Oxen network uses `LOKI`).
        #[arg(long, default_value = "SISPOP")]
        gcm_salt: String,
    },
    /// Load a `/storage_rpc/v1` server (ours or any other): namespace-0 stores of `--size`
    /// bytes spread over the accounts of `--pubkeys`, then signed retrieves for the accounts
    /// whose seed is given; prints stores/s, retrieves/s and p50/p99 latency.
    Bench {
        /// The server, `https://IP:PORT`.
        #[arg(long)]
        target: String,
        /// Accounts the server owns: `<66 hex> [<seed hex>]` a line.
        #[arg(long)]
        pubkeys: std::path::PathBuf,
        /// Keep-alive connections.
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// Loopback source addresses to spread connections over (127.0.1.0 on).
        #[arg(long, default_value_t = 128)]
        sources: usize,
        /// Stores to send.
        #[arg(long, default_value_t = 20_000)]
        stores: u64,
        /// Retrieves to send.
        #[arg(long, default_value_t = 20_000)]
        retrieves: u64,
        /// Message size in bytes.
        #[arg(long, default_value_t = 128)]
        size: usize,
    },
}

#[derive(Subcommand)]
enum OnionCmd {
    /// Store a message.
    Store {
        /// The message text.
        message: String,
        /// Time to live in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
    /// Retrieve the account's messages.
    Retrieve,
    /// Ask for the account's swarm.
    GetSwarm,
}

fn account(seed: &Option<String>) -> anyhow::Result<(SigningKey, String)> {
    let s = seed
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("--seed is required (make one with `keygen`)"))?;
    let bytes: [u8; 32] = hex::decode(s)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| anyhow::anyhow!("--seed must be 64 hex characters"))?;
    let sk = SigningKey::from_bytes(&bytes);
    let id = format!(
        "05{}",
        hex::encode(sk.verifying_key().to_montgomery().to_bytes())
    );
    Ok((sk, id))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn ns_str(ns: i16) -> String {
    if ns == 0 {
        String::new()
    } else {
        ns.to_string()
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Cmd::Keygen = cli.cmd {
        let seed: [u8; 32] = rand::random();
        let (_, id) = account(&Some(hex::encode(seed)))?;
        println!("seed: {}\nsession id: {id}", hex::encode(seed));
        return Ok(());
    }
    if let Cmd::Bench {
        target,
        pubkeys,
        connections,
        sources,
        stores,
        retrieves,
        size,
    } = &cli.cmd
    {
        return bench(
            target,
            pubkeys,
            *connections,
            *sources,
            *stores,
            *retrieves,
            *size,
        )
        .await;
    }
    if let Cmd::Onion { .. } = &cli.cmd {
        return onion(&cli).await;
    }
    let (sk, id) = account(&cli.seed)?;
    let mut members = swarm(&cli.daemon, &id).await?;
    if let Some(prefix) = &cli.node {
        members.retain(|(pk, _)| pk.starts_with(prefix.as_str()));
        if members.is_empty() {
            anyhow::bail!("no member of the swarm has a key starting with {prefix}");
        }
    }
    let ed = hex::encode(sk.verifying_key().to_bytes());
    let now = now_ms();
    let ns = cli.namespace;
    let (method, params) = match &cli.cmd {
        Cmd::Store {
            message,
            ttl,
            sequence,
        } => {
            let sig = sk.sign(format!("store{}{now}", ns_str(ns)).as_bytes());
            let p = json!({"pubkey": id, "pubkey_ed25519": ed, "namespace": ns, "timestamp": now,
                           "ttl": ttl.saturating_mul(1000), "data": STANDARD.encode(message),
                           "signature": STANDARD.encode(sig.to_bytes())});
            if *sequence {
                (
                    "sequence",
                    json!({"requests": [{"method": "store", "params": p}]}),
                )
            } else {
                ("store", p)
            }
        }
        Cmd::Retrieve { .. } => {
            let sig = sk.sign(format!("retrieve{}{now}", ns_str(ns)).as_bytes());
            (
                "retrieve",
                json!({"pubkey": id, "pubkey_ed25519": ed, "namespace": ns, "timestamp": now,
                       "signature": STANDARD.encode(sig.to_bytes())}),
            )
        }
        Cmd::Keygen | Cmd::Bench { .. } | Cmd::Onion { .. } => unreachable!("handled above"),
    };
    if let Cmd::Retrieve { every: true } = cli.cmd {
        let body = json!({"method": method, "params": params});
        let mut all_ok = true;
        for (pk, addr) in &members {
            let (status, hashes) = match post(*addr, &body).await {
                Ok((code, text)) => {
                    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    let hashes: Vec<&str> = v["messages"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|m| m["hash"].as_str())
                        .collect();
                    (code.to_string(), hashes.join(","))
                }
                Err(_) => ("error".to_owned(), String::new()),
            };
            all_ok &= status == "200";
            let count = if hashes.is_empty() {
                0
            } else {
                hashes.split(',').count()
            };
            println!("member {pk} {addr} {status} {count} {hashes}");
        }
        if !all_ok {
            anyhow::bail!("not every member answered");
        }
        return Ok(());
    }
    // Any member will do; try them in turn.
    let mut last = None;
    for (pk, addr) in &members {
        match post(*addr, &json!({"method": method, "params": params})).await {
            Ok((200, body)) => {
                println!("node {} ({addr}) answered:", &pk[..16.min(pk.len())]);
                let v: Value = serde_json::from_str(&body).unwrap_or(Value::String(body));
                if let Cmd::Retrieve { .. } = cli.cmd {
                    print_messages(&v);
                }
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            Ok((code, body)) => last = Some(format!("{addr}: {code} {body}")),
            Err(e) => last = Some(format!("{addr}: {e:#}")),
        }
    }
    anyhow::bail!(
        "no member of the swarm accepted the request; last: {}",
        last.unwrap_or_default()
    )
}

/// `onion ...`: see [`Cmd::Onion`].
async fn onion(cli: &Cli) -> anyhow::Result<()> {
    use sispop_relay::client::{build, choose_path, open_answer, Answer, Destination, Node};
    let Cmd::Onion {
        what,
        enc,
        hops,
        gcm_salt,
    } = &cli.cmd
    else {
        unreachable!("called for onion only");
    };
    let enc = sispop_relay::crypto::EncType::parse(Some(enc)).map_err(anyhow::Error::msg)?;
    let (sk, id) = account(&cli.seed)?;
    let ed = hex::encode(sk.verifying_key().to_bytes());
    let now = now_ms();
    let ns = cli.namespace;
    let request = match what {
        OnionCmd::Store { message, ttl } => {
            let sig = sk.sign(format!("store{}{now}", ns_str(ns)).as_bytes());
            json!({"method": "store", "params": {"pubkey": id, "pubkey_ed25519": ed,
                   "namespace": ns, "timestamp": now, "ttl": ttl.saturating_mul(1000),
                   "data": STANDARD.encode(message), "signature": STANDARD.encode(sig.to_bytes())}})
        }
        OnionCmd::Retrieve => {
            let sig = sk.sign(format!("retrieve{}{now}", ns_str(ns)).as_bytes());
            json!({"method": "retrieve", "params": {"pubkey": id, "pubkey_ed25519": ed,
                   "namespace": ns, "timestamp": now, "signature": STANDARD.encode(sig.to_bytes())}})
        }
        OnionCmd::GetSwarm => json!({"method": "get_swarm", "params": {"pubkey": id}}),
    };
    let nodes = sispop_client::storage::active_nodes(&cli.daemon).await?;
    let mut members = swarm(&cli.daemon, &id).await?;
    if let Some(prefix) = &cli.node {
        members.retain(|(pk, _)| pk.starts_with(prefix.as_str()));
    }
    let key = |hex_key: &str| {
        hex::decode(hex_key)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .and_then(Node::from_ed25519)
    };
    let dest = members
        .choose(&mut rand::thread_rng())
        .and_then(|(pk, _)| key(pk))
        .ok_or_else(|| anyhow::anyhow!("no member of the account's swarm to send to"))?;
    let relays: Vec<Node> = nodes.iter().filter_map(|n| key(&n.pubkey)).collect();
    let path = choose_path(&relays, *hops, Some(dest), &mut rand::thread_rng())
        .ok_or_else(|| anyhow::anyhow!("fewer than {hops} active service nodes with addresses"))?;
    let addr_of = |n: &Node| {
        let hex_key = hex::encode(n.ed25519);
        nodes
            .iter()
            .find(|s| s.pubkey == hex_key)
            .map(|s| s.addr.to_string())
            .unwrap_or_else(|| "?".into())
    };
    for (i, n) in path.iter().enumerate() {
        let role = if i + 1 == path.len() {
            "destination"
        } else {
            "relay"
        };
        println!(
            "hop {} ({role}): {} {}",
            i + 1,
            hex::encode(n.ed25519),
            addr_of(n)
        );
    }
    let built = build(
        &path,
        &Destination::Storage,
        request.to_string().as_bytes(),
        enc,
        gcm_salt.as_bytes(),
        &mut rand::rngs::OsRng,
        None,
    )?;
    let entry = nodes
        .iter()
        .find(|s| s.pubkey == hex::encode(path[0].ed25519))
        .map(|s| s.addr)
        .ok_or_else(|| anyhow::anyhow!("no address for the entry node"))?;
    let (status, body) =
        sispop_client::storage::post_bytes(entry, "/onion_req/v2", built.body).await?;
    match open_answer(&built.reply, status, &body)? {
        Answer::Destination { status, body } => {
            println!("destination answered {status} ({}):", enc.name());
            if let OnionCmd::Retrieve = what {
                print_messages(&body);
            }
            println!("{}", serde_json::to_string_pretty(&body)?);
            if status != 200 {
                anyhow::bail!("the destination answered {status}");
            }
            Ok(())
        }
        Answer::Path { status, text } => anyhow::bail!("the path failed: {status} {text}"),
    }
}

/// One line per message of a retrieve answer: its hash and its text.
fn print_messages(v: &Value) {
    for m in v["messages"].as_array().into_iter().flatten() {
        let data = m["data"]
            .as_str()
            .and_then(|d| STANDARD.decode(d).ok())
            .map(|d| String::from_utf8_lossy(&d).into_owned())
            .unwrap_or_default();
        println!("message {}: {data}", m["hash"].as_str().unwrap_or("?"));
    }
}

fn report(what: &str, r: &sispop_client::storage::LoadResult) {
    println!(
        "{what}: {} ok, {} failed in {:.1} s: {:.0}/s, latency p50 {:.1} ms, p99 {:.1} ms",
        r.ok,
        r.failed,
        r.secs,
        r.ok as f64 / r.secs.max(1e-9),
        r.quantile(0.5),
        r.quantile(0.99)
    );
    if let Some(e) = &r.sample_error {
        println!("  a failure: {e}");
    }
}

async fn bench(
    target: &str,
    pubkeys: &std::path::Path,
    connections: usize,
    sources: usize,
    stores: u64,
    retrieves: u64,
    size: usize,
) -> anyhow::Result<()> {
    use std::sync::Arc;
    let addr: std::net::SocketAddr = target
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .parse()
        .map_err(|_| anyhow::anyhow!("--target must be https://IP:PORT"))?;
    let text = std::fs::read_to_string(pubkeys)?;
    let accounts = Arc::new(sispop_client::storage::read_accounts(&text)?);
    println!(
        "{stores} stores of {size} B and {retrieves} retrieves against {addr}: {} accounts, {connections} connections from {sources} source addresses",
        accounts.len()
    );
    let now = now_ms();
    let run = now.to_le_bytes();
    let a = accounts.clone();
    let store = move |i: u64| {
        let acct = &a[(i % a.len() as u64) as usize];
        let mut data = vec![0u8; size];
        for (d, b) in data
            .iter_mut()
            .zip(i.to_le_bytes().iter().chain(run.iter()))
        {
            *d = *b;
        }
        json!({"method": "store", "params": {"pubkey": acct.pubkey, "timestamp": now,
               "ttl": 3_600_000, "data": STANDARD.encode(&data)}})
    };
    let r = sispop_client::storage::load(addr, connections, sources, stores, Arc::new(store)).await;
    report("store", &r);
    let signers: Vec<(String, SigningKey)> = accounts
        .iter()
        .filter_map(|a| {
            a.seed
                .map(|s| (a.pubkey.clone(), SigningKey::from_bytes(&s)))
        })
        .collect();
    if signers.is_empty() || retrieves == 0 {
        println!("retrieve: skipped (no account in --pubkeys has a seed)");
        return Ok(());
    }
    // One signed request per account, reused: the signature covers the timestamp only.
    let ts = now_ms();
    let reqs: Arc<Vec<Value>> = Arc::new(
        signers
            .iter()
            .map(|(pk, sk)| {
                let sig = sk.sign(format!("retrieve{ts}").as_bytes());
                json!({"method": "retrieve", "params": {"pubkey": pk, "timestamp": ts,
                       "pubkey_ed25519": hex::encode(sk.verifying_key().to_bytes()),
                       "max_count": 10,
                       "signature": STANDARD.encode(sig.to_bytes())}})
            })
            .collect(),
    );
    let r = sispop_client::storage::load(
        addr,
        connections,
        sources,
        retrieves,
        Arc::new(move |i| reqs[(i % reqs.len() as u64) as usize].clone()),
    )
    .await;
    report("retrieve (10 newest)", &r);
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sispop-storage: {e:#}");
            ExitCode::FAILURE
        }
    }
}
