//! Command line and `sispop.conf`: the same keys in both. A config file line `key=value` (or a
//! bare `key` for a switch) means `--key=value`; flags on the command line win.

use std::path::{Path, PathBuf};

use clap::Parser;
use sispop_chain::{Network, NetworkParams};

/// The Sispop service node daemon.
#[derive(Parser, Debug, Clone)]
#[command(name = "sispopd", version, about = "Sispop service node daemon", long_about = None)]
pub struct Args {
    /// Directory for the chain database and keys (default ~/.sispop[/testnet|/devnet]).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Run on the test network.
    #[arg(long, conflicts_with = "devnet", num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub testnet: bool,
    /// Run on a local development network (fast blocks, tiny parameters).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub devnet: bool,
    /// IP the JSON-RPC server binds to.
    #[arg(long, default_value = "127.0.0.1")]
    pub rpc_bind_ip: String,
    /// JSON-RPC port (network default when omitted).
    #[arg(long)]
    pub rpc_bind_port: Option<u16>,
    /// Restricted RPC, as oxend's: the operator's methods (`stop_daemon`, `submit_block`,
    /// `generateblocks`, registration commands, this node's keys and status) answer "Method not
    /// found". `--restricted-rpc` (or `restricted-rpc=1`) restricts every caller;
    /// `--restricted-rpc=0` none. Without the flag, callers from other machines are restricted
    /// and loopback callers (the operator's console) are not.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub restricted_rpc: Option<bool>,
    /// Serve Prometheus metrics at `http://<this>/metrics` (`IP:PORT`; off when omitted).
    #[arg(long, value_name = "IP:PORT")]
    pub metrics_bind: Option<String>,
    /// P2P port (network default when omitted).
    #[arg(long)]
    pub p2p_bind_port: Option<u16>,
    /// IP the P2P listener binds to.
    #[arg(long, default_value = "0.0.0.0")]
    pub p2p_bind_ip: String,
    /// A peer to connect to and stay connected to (host:port or multiaddr); repeatable.
    #[arg(long)]
    pub add_peer: Vec<String>,
    /// A seed node to bootstrap from (host:port or multiaddr); repeatable.
    #[arg(long)]
    pub seed_node: Vec<String>,
    /// Run as a service node (creates and uses the service node key in the data dir).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub service_node: bool,
    /// Public IPv4 address this service node advertises in its uptime proofs (devnet default:
    /// 127.0.0.1).
    #[arg(long, value_name = "IP")]
    pub service_node_public_ip: Option<String>,
    /// Storage HTTPS port: where a service node serves `/storage_rpc/v1`, and what its uptime
    /// proofs advertise (network default when omitted).
    #[arg(long)]
    pub storage_port: Option<u16>,
    /// Address the storage HTTPS server binds.
    #[arg(long, default_value = "0.0.0.0")]
    pub storage_bind_ip: String,
    /// Devnet only: misbehave on purpose for scenarios (`no-proofs`, `unreachable`); repeatable.
    #[arg(long, value_name = "FAULT")]
    pub dev_fault: Vec<String>,
    /// Mine blocks paying this address.
    #[arg(long, value_name = "ADDRESS")]
    pub mine_to: Option<String>,
    /// Read `key=value` options from this file.
    #[arg(long)]
    pub config_file: Option<PathBuf>,
    /// Log format: `text` for people, `json` (one object a line) for machines.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Threads for network, RPC and other async work, and for peeling onion layers; 0 (the
    /// default) is one per core. Several nodes sharing a machine do better with their share
    /// each (as oxend's option of this name bounds its threads). Signature, proof and storage
    /// work have pools of their own.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub max_concurrency: usize,
    /// Log filter (tracing env-filter syntax), e.g. `info` or `sispopd=debug`.
    #[arg(long, default_value = "info")]
    pub log_level: String,
    /// Daemon URL for forwarded commands (default: this network's local RPC port).
    #[arg(long)]
    pub daemon_address: Option<String>,
    /// A console command to run against the running daemon (`status`, `print_height`, ...).
    #[arg(trailing_var_arg = true)]
    pub command: Vec<String>,
}

/// How log lines are written.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line.
    Json,
}

/// A config file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Unreadable file.
    #[error("cannot read config file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    /// A line that is not `key=value` or `key`.
    #[error("{file}:{line}: expected `key=value`")]
    Syntax {
        /// File.
        file: PathBuf,
        /// 1-based line.
        line: usize,
    },
}

/// Turns config file lines into `--key=value` arguments. Keys this daemon does not have (an
/// oxend `sispop.conf` holds many) are skipped with a warning rather than refused.
pub fn config_args(path: &Path) -> Result<Vec<String>, ConfigError> {
    use clap::CommandFactory as _;
    let cmd = Args::command();
    let known: Vec<&str> = cmd.get_arguments().filter_map(|a| a.get_long()).collect();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.to_owned(), e))?;
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (line, None),
        };
        if key.is_empty() || key.contains(char::is_whitespace) || key == "config-file" {
            return Err(ConfigError::Syntax {
                file: path.to_owned(),
                line: i + 1,
            });
        }
        if !known.contains(&key) {
            // Logging is not set up yet when the config file is read.
            eprintln!(
                "warning: {}:{}: `{key}` is not a sispopd option; skipped",
                path.display(),
                i + 1
            );
            continue;
        }
        out.push(match value {
            Some(v) => format!("--{key}={v}"),
            None => format!("--{key}"),
        });
    }
    Ok(out)
}

impl Args {
    /// Parses the command line, then merges the config file under it.
    pub fn load() -> anyhow::Result<Args> {
        let argv: Vec<String> = std::env::args().collect();
        let first = Args::parse_from(&argv);
        let Some(path) = first.config_file.clone() else {
            return Ok(first);
        };
        let mut merged = vec![argv[0].clone()];
        merged.extend(config_args(&path)?);
        merged.extend(argv[1..].iter().cloned());
        Ok(Args::try_parse_from(merged)?)
    }

    /// The network selected.
    pub fn network(&self) -> Network {
        if self.devnet {
            Network::Devnet
        } else if self.testnet {
            Network::Testnet
        } else {
            Network::Mainnet
        }
    }

    /// The network's parameters.
    pub fn params(&self) -> &'static NetworkParams {
        NetworkParams::get(self.network())
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        if let Some(d) = &self.data_dir {
            return d.clone();
        }
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
        let base = home.join(".sispop");
        match self.network() {
            Network::Mainnet => base,
            Network::Testnet => base.join("testnet"),
            Network::Devnet => base.join("devnet"),
        }
    }

    /// The RPC port.
    pub fn rpc_port(&self) -> u16 {
        self.rpc_bind_port.unwrap_or(self.params().rpc_port)
    }

    /// The daemon URL for forwarded commands.
    pub fn daemon_url(&self) -> String {
        self.daemon_address
            .clone()
            .unwrap_or_else(|| format!("http://127.0.0.1:{}", self.rpc_port()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_lines_become_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("sispop.conf");
        std::fs::write(
            &p,
            "# comment\ndevnet\nrpc-bind-port=1234\n\n data-dir = /tmp/x \n",
        )
        .expect("write");
        assert_eq!(
            config_args(&p).expect("parse"),
            vec!["--devnet", "--rpc-bind-port=1234", "--data-dir=/tmp/x"]
        );
        // oxend's keys: switches with values, keys we do not have.
        std::fs::write(
            &p,
            "service-node=1\nrestricted-rpc=1\ntestnet=0\nlog-file=/x\nmax-concurrency=4\n",
        )
        .expect("write");
        let args = config_args(&p).expect("parse");
        assert_eq!(
            args,
            vec![
                "--service-node=1",
                "--restricted-rpc=1",
                "--testnet=0",
                "--max-concurrency=4"
            ]
        );
        let parsed = Args::try_parse_from(std::iter::once("sispopd".to_owned()).chain(args))
            .expect("accepted");
        assert!(parsed.service_node && !parsed.testnet);
        assert_eq!(parsed.max_concurrency, 4);
        assert_eq!(parsed.restricted_rpc, Some(true));
        let bare = Args::try_parse_from(["sispopd", "--service-node", "--restricted-rpc"])
            .expect("bare switches");
        assert!(bare.service_node);
        assert_eq!(bare.restricted_rpc, Some(true));
        let off = Args::try_parse_from(["sispopd", "--restricted-rpc=0"]).expect("off");
        assert_eq!(off.restricted_rpc, Some(false));
        std::fs::write(&p, "=5\n").expect("write");
        assert!(matches!(
            config_args(&p),
            Err(ConfigError::Syntax { line: 1, .. })
        ));
    }
}
