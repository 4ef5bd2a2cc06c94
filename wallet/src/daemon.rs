//! The wallet's view of a node: JSON-RPC calls over HTTP.

use jsonrpsee::core::client::ClientT;
use jsonrpsee::core::params::ObjectParams;
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use serde_json::Value;

/// A daemon that could not answer.
#[derive(Debug, thiserror::Error)]
#[error("daemon at {url}: {msg}")]
pub struct DaemonError {
    /// Where.
    pub url: String,
    /// What.
    pub msg: String,
}

/// A connection to `sispopd`.
pub struct Daemon {
    url: String,
    client: HttpClient,
}

impl Daemon {
    /// Connects (lazily) to `url`, e.g. `http://127.0.0.1:38857`.
    pub fn new(url: &str) -> Result<Daemon, DaemonError> {
        let client = HttpClientBuilder::default()
            .request_timeout(std::time::Duration::from_secs(60))
            .max_response_size(64 * 1024 * 1024)
            .build(format!("{}/json_rpc", url.trim_end_matches('/')))
            .map_err(|e| DaemonError {
                url: url.into(),
                msg: e.to_string(),
            })?;
        Ok(Daemon {
            url: url.into(),
            client,
        })
    }

    /// Calls `method` with named params.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, DaemonError> {
        let mut p = ObjectParams::new();
        if let Value::Object(m) = params {
            for (k, v) in m {
                p.insert(&k, v).map_err(|e| DaemonError {
                    url: self.url.clone(),
                    msg: e.to_string(),
                })?;
            }
        }
        self.client
            .request::<Value, _>(method, p)
            .await
            .map_err(|e| DaemonError {
                url: self.url.clone(),
                msg: e.to_string(),
            })
    }
}
