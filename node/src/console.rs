//! `sispopd <command>`: console commands forwarded to a running daemon over its RPC, printed
//! the way the C++ daemon prints them.

use jsonrpsee::core::client::ClientT;
use jsonrpsee::core::params::ObjectParams;
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use serde_json::Value;

/// Commands this build knows, with a one-line description.
pub const COMMANDS: &[(&str, &str)] = &[
    (
        "status",
        "one-line summary: height, network, mining, connections, uptime",
    ),
    ("print_height", "the current block count"),
    (
        "print_block <height|hash>",
        "a block header and its transactions",
    ),
    ("print_pool", "hashes of pooled transactions"),
    ("version", "the daemon's version"),
    ("stop_daemon | exit", "stop the daemon"),
    ("help", "this list"),
];

/// Why a console command failed.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The daemon could not be reached or answered an error.
    #[error("daemon at {0}: {1}")]
    Rpc(String, String),
    /// Unknown command or bad arguments.
    #[error("{0}")]
    Usage(String),
}

fn client(url: &str) -> Result<HttpClient, ConsoleError> {
    HttpClientBuilder::default()
        .request_timeout(std::time::Duration::from_secs(30))
        .build(format!("{}/json_rpc", url.trim_end_matches('/')))
        .map_err(|e| ConsoleError::Rpc(url.to_owned(), e.to_string()))
}

async fn call(url: &str, method: &str, params: ObjectParams) -> Result<Value, ConsoleError> {
    client(url)?
        .request::<Value, _>(method, params)
        .await
        .map_err(|e| ConsoleError::Rpc(url.to_owned(), e.to_string()))
}

/// Formats a duration as `Xd Yh Zm Ws`.
pub fn uptime(secs: u64) -> String {
    format!(
        "{}d {}h {}m {}s",
        secs / 86_400,
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    )
}

fn hashrate(h: f64) -> String {
    let units = ["H/s", "kH/s", "MH/s", "GH/s", "TH/s"];
    let mut v = h;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < units.len() {
        v /= 1000.0;
        i += 1;
    }
    format!("{v:.2} {}", units[i])
}

/// The upstream `status` line from a `get_info` answer.
pub fn status_line(info: &Value) -> String {
    let height = info["height"].as_u64().unwrap_or(0);
    let target = info["target_height"].as_u64().unwrap_or(height).max(height);
    let pct = if target == 0 {
        100.0
    } else {
        height as f64 * 100.0 / target as f64
    };
    let diff = info["difficulty"].as_u64().unwrap_or(0) as f64;
    let block_time = info["target"].as_u64().unwrap_or(120).max(1) as f64;
    let mining = if info["mining"].as_bool().unwrap_or(false) {
        "mining"
    } else {
        "not mining"
    };
    format!(
        "Height: {}/{} ({:.1}%) on {}, {}, net hash {}, v{}(net v{}), up to date, {}(out)+{}(in) connections, uptime {}",
        height,
        target,
        pct,
        info["nettype"].as_str().unwrap_or("mainnet"),
        mining,
        hashrate(diff / block_time),
        info["version"].as_str().unwrap_or("?"),
        info["hard_fork"].as_u64().unwrap_or(0),
        info["outgoing_connections_count"].as_u64().unwrap_or(0),
        info["incoming_connections_count"].as_u64().unwrap_or(0),
        uptime(info["uptime"].as_u64().unwrap_or(0)),
    )
}

/// Runs one console command against the daemon at `url` and returns what to print.
pub async fn run(url: &str, words: &[String]) -> Result<String, ConsoleError> {
    let (cmd, rest) = words
        .split_first()
        .ok_or_else(|| ConsoleError::Usage("no command".into()))?;
    match cmd.as_str() {
        "status" => Ok(status_line(
            &call(url, "get_info", ObjectParams::new()).await?,
        )),
        "print_height" => {
            Ok(call(url, "get_block_count", ObjectParams::new()).await?["count"].to_string())
        }
        "version" => Ok(call(url, "get_info", ObjectParams::new()).await?["version"]
            .as_str()
            .unwrap_or("?")
            .to_owned()),
        "print_pool" => {
            let v = call(url, "get_transaction_pool_hashes", ObjectParams::new()).await?;
            let hashes: Vec<&str> = v["tx_hashes"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            Ok(if hashes.is_empty() {
                "Pool is empty".into()
            } else {
                hashes.join("\n")
            })
        }
        "print_block" => {
            let arg = rest
                .first()
                .ok_or_else(|| ConsoleError::Usage("usage: print_block <height|hash>".into()))?;
            let mut p = ObjectParams::new();
            if let Ok(h) = arg.parse::<u64>() {
                p.insert("height", h)
                    .map_err(|e| ConsoleError::Usage(e.to_string()))?;
            } else {
                p.insert("hash", arg)
                    .map_err(|e| ConsoleError::Usage(e.to_string()))?;
            }
            let v = call(url, "get_block", p).await?;
            serde_json::to_string_pretty(&v["block_header"])
                .map_err(|e| ConsoleError::Usage(e.to_string()))
        }
        "stop_daemon" | "exit" => {
            call(url, "stop_daemon", ObjectParams::new()).await?;
            Ok("Stop signal sent".into())
        }
        "help" => Ok(COMMANDS
            .iter()
            .map(|(c, d)| format!("{c:<28} {d}"))
            .collect::<Vec<_>>()
            .join("\n")),
        other => Err(ConsoleError::Usage(format!(
            "unknown command '{other}'; try 'help'"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_matches_upstream_shape() {
        let info = serde_json::json!({
            "height": 120, "target_height": 120, "nettype": "devnet", "difficulty": 1, "target": 2,
            "version": "0.1.0", "hard_fork": 19, "outgoing_connections_count": 0,
            "incoming_connections_count": 0, "uptime": 93_784, "mining": true
        });
        assert_eq!(
            status_line(&info),
            "Height: 120/120 (100.0%) on devnet, mining, net hash 0.50 H/s, v0.1.0(net v19), up to date, 0(out)+0(in) connections, uptime 1d 2h 3m 4s"
        );
    }
}
