//! `sispop-storage`: store and retrieve messages for an account on the swarm that owns it, to
//! check a node by hand. The account is a Session id made from an Ed25519 seed.
//!
//! ```sh
//! sispop-storage keygen
//! sispop-storage --daemon http://127.0.0.1:38857 --seed <hex> store "hello"
//! sispop-storage --daemon http://127.0.0.1:38857 --seed <hex> retrieve
//! ```

use std::process::ExitCode;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use clap::{Parser, Subcommand};
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Value};
use sispopd::storage_client::{post, swarm};

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
    },
    /// Retrieve the account's messages from a member of the swarm.
    Retrieve,
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
        Cmd::Store { message, ttl } => {
            let sig = sk.sign(format!("store{}{now}", ns_str(ns)).as_bytes());
            (
                "store",
                json!({"pubkey": id, "pubkey_ed25519": ed, "namespace": ns, "timestamp": now,
                       "ttl": ttl.saturating_mul(1000), "data": STANDARD.encode(message),
                       "signature": STANDARD.encode(sig.to_bytes())}),
            )
        }
        Cmd::Retrieve => {
            let sig = sk.sign(format!("retrieve{}{now}", ns_str(ns)).as_bytes());
            (
                "retrieve",
                json!({"pubkey": id, "pubkey_ed25519": ed, "namespace": ns, "timestamp": now,
                       "signature": STANDARD.encode(sig.to_bytes())}),
            )
        }
        Cmd::Keygen => unreachable!("handled above"),
    };
    // Any member will do; try them in turn.
    let mut last = None;
    for (pk, addr) in &members {
        match post(*addr, &json!({"method": method, "params": params})).await {
            Ok((200, body)) => {
                println!("node {} ({addr}) answered:", &pk[..16.min(pk.len())]);
                let v: Value = serde_json::from_str(&body).unwrap_or(Value::String(body));
                if let Cmd::Retrieve = cli.cmd {
                    for m in v["messages"].as_array().into_iter().flatten() {
                        let data = m["data"]
                            .as_str()
                            .and_then(|d| STANDARD.decode(d).ok())
                            .map(|d| String::from_utf8_lossy(&d).into_owned())
                            .unwrap_or_default();
                        println!("message {}: {data}", m["hash"].as_str().unwrap_or("?"));
                    }
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
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
