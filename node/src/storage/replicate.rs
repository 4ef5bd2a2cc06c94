//! Which parts of a client's storage request go on to the rest of the swarm, as upstream's
//! recursive requests do: a write itself, each write of a `batch` that succeeded here (all at
//! once: a batch has no order), and the branch an `ifelse` ran (which may be any of these).
//! A top-level `sequence` is run one subrequest at a time by the daemon (`serve_sequence`),
//! each replicated before the next runs; one inside an `ifelse` branch comes here and its
//! writes go on one after another, in order. Each is forwarded as the client signed it; every
//! member checks and applies it, and their signed results join ours under `"swarm"`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::Value;

use sispop_storage::rpc::RECURSIVE_METHODS;
use sispop_storage::storage_test::Acked;

use crate::node::Node;
use crate::storage::server::Storage;
use crate::storage::sync::forward;

/// Whether `req` (with our `status` for it) is a write to forward: a recursive method that
/// succeeded here, or a `delete` with `required` that found nothing here (404: the swarm as a
/// whole decides).
fn forwards(req: &Value, status: u16) -> bool {
    let m = req["method"].as_str().unwrap_or("");
    RECURSIVE_METHODS.contains(&m) && (status == 200 || (m == "delete" && status == 404))
}

/// Whether [`replicate`] has anything to do for `req` (our `status` for it): a write that
/// succeeded here, or a request that may hold writes. Anything else is answered as it is.
pub fn passes_on(req: &Value, status: u16) -> bool {
    match req["method"].as_str().unwrap_or("") {
        // Its subrequests are no meta-requests: it holds writes when one is a recursive method.
        "batch" => req["params"]["requests"].as_array().is_some_and(|subs| {
            subs.iter()
                .any(|s| RECURSIVE_METHODS.contains(&s["method"].as_str().unwrap_or("")))
        }),
        "sequence" | "ifelse" => true,
        _ => forwards(req, status),
    }
}

/// What a `store` (`req`, answered `body` here) stored and when, for its acks.
fn stored(req: &Value, body: &Value) -> Option<(Acked, u64)> {
    (req["method"] == "store")
        .then(|| sispop_storage::storage_test::stored(&req["params"], body))
        .flatten()
}

/// Merges peers' entries into our answer `body` (under `"swarm"`); a `delete` with `required`
/// that found nothing here becomes 200 when some member deleted something.
fn merge(req: &Value, status: &mut u16, body: &mut Value, entries: Vec<(String, Value)>) {
    if let Some(Value::Object(m)) = body.get_mut("swarm") {
        for (pk, entry) in entries {
            m.insert(pk, entry);
        }
    }
    if *status == 404 && req["method"] == "delete" {
        let any = body["swarm"].as_object().is_some_and(|m| {
            m.values()
                .any(|e| e["deleted"].as_array().is_some_and(|d| !d.is_empty()))
        });
        if any {
            *status = 200;
        }
    }
}

/// Forwards the writes of `req` (`raw`: its bytes as the client sent them, for a top-level
/// write) to the other members of `swarm`, merging their results into our answer.
pub fn replicate<'a>(
    node: &'a Node,
    storage: &'a Arc<Storage>,
    swarm: u64,
    req: &'a Value,
    raw: Option<&'a [u8]>,
    status: &'a mut u16,
    body: &'a mut Value,
) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
    Box::pin(async move {
        // What `passes_on` says needs nothing is never replicated: callers that finish such an
        // answer on a worker rely on it.
        if !passes_on(req, *status) {
            return;
        }
        match req["method"].as_str().unwrap_or("") {
            "batch" | "sequence" => {
                let in_order = req["method"] == "sequence";
                let (Some(subs), Some(results)) = (
                    req["params"]["requests"].as_array(),
                    body.get_mut("results").and_then(Value::as_array_mut),
                ) else {
                    return;
                };
                // The writes that succeeded here.
                let todo: Vec<(usize, &Value)> = subs
                    .iter()
                    .zip(results.iter())
                    .enumerate()
                    .filter(|(_, (sub, r))| forwards(sub, r["code"].as_u64().unwrap_or(0) as u16))
                    .map(|(i, (sub, _))| (i, sub))
                    .collect();
                let stored: Vec<Option<(Acked, u64)>> = subs
                    .iter()
                    .zip(results.iter())
                    .map(|(sub, r)| stored(sub, &r["body"]))
                    .collect();
                let stored = &stored;
                let ask = |(i, sub): (usize, &'a Value)| async move {
                    let bytes = serde_json::to_vec(sub).unwrap_or_default();
                    let m = stored.get(i).and_then(Option::as_ref);
                    (i, forward(node, storage, swarm, &bytes, m).await)
                };
                let answers = if in_order {
                    let mut out = Vec::with_capacity(todo.len());
                    for t in todo {
                        out.push(ask(t).await);
                    }
                    out
                } else {
                    futures::future::join_all(todo.into_iter().map(ask)).await
                };
                for (i, entries) in answers {
                    let (Some(sub), Some(r)) = (subs.get(i), results.get_mut(i)) else {
                        continue;
                    };
                    let mut code = r["code"].as_u64().unwrap_or(0) as u16;
                    merge(sub, &mut code, &mut r["body"], entries);
                    r["code"] = code.into();
                }
            }
            "ifelse" => {
                let branch = if body["condition"] == Value::Bool(true) {
                    "then"
                } else {
                    "else"
                };
                let sub = &req["params"][branch];
                let Some(r) = body.get_mut("result") else {
                    return;
                };
                let mut code = r["code"].as_u64().unwrap_or(0) as u16;
                replicate(node, storage, swarm, sub, None, &mut code, &mut r["body"]).await;
                r["code"] = code.into();
            }
            _ if forwards(req, *status) => {
                let bytes = match raw {
                    Some(b) => b.to_vec(),
                    None => serde_json::to_vec(req).unwrap_or_default(),
                };
                let sent = std::time::Instant::now();
                let m = stored(req, body);
                let entries = forward(node, storage, swarm, &bytes, m.as_ref()).await;
                node.metrics.replicated(sent.elapsed());
                merge(req, status, body, entries);
            }
            _ => {}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testnode::TestNode;
    use serde_json::json;

    /// The methods upstream forwards to the rest of the swarm (its recursive requests), written
    /// out here rather than taken from `RECURSIVE_METHODS`.
    const UPSTREAM_RECURSIVE: [&str; 9] = [
        "store",
        "delete",
        "delete_all",
        "delete_before",
        "expire",
        "expire_msgs",
        "expire_all",
        "revoke_subaccount",
        "unrevoke_subaccount",
    ];

    /// How many writes [`replicate`] tried to pass on for `req` (answered `status` here), on a
    /// node of a swarm of three with no network: each try at a member fails and is noted for
    /// redelivery, so the notes count them.
    async fn forwarded(t: &TestNode, req: Value, status: u16, body: Value) -> usize {
        let before = t
            .storage
            .missed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len();
        let (mut status, mut body) = (status, body);
        replicate(&t.node, &t.storage, 7, &req, None, &mut status, &mut body).await;
        let after = t
            .storage
            .missed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len();
        (after - before) / 2
    }

    /// What `serve_rpc_then` finishes on the worker (what `passes_on` says needs nothing) is
    /// exactly what `replicate` leaves alone, checked by running it: every upstream-recursive
    /// method that succeeded here is passed on, nothing else is, and a `batch` passes on its
    /// writes that succeeded.
    #[tokio::test]
    async fn what_passes_on_is_what_replicate_forwards() {
        let t = TestNode::new(&[7, 7, 7], |_, _| {});
        let m = |method: &str| json!({"method": method, "params": {}});
        let methods = UPSTREAM_RECURSIVE.iter().chain(&[
            "retrieve",
            "get_swarm",
            "info",
            "get_expiries",
            "oxend_request",
            "",
        ]);
        for method in methods {
            let upstream = UPSTREAM_RECURSIVE.contains(method);
            for status in [200, 400, 404, 500] {
                let req = m(method);
                let sent = forwarded(&t, req.clone(), status, json!({"swarm": {}})).await;
                let expected =
                    upstream && (status == 200 || (status == 404 && *method == "delete"));
                assert_eq!(sent == 1, expected, "{method} {status}");
                assert_eq!(passes_on(&req, status), expected, "{method} {status}");
            }
        }
        // A batch: its writes that succeeded here, each once.
        let batch = json!({"method": "batch", "params": {"requests": [
            m("store"), m("retrieve"), m("delete"), m("store")]}});
        let results = json!({"results": [
            {"code": 200, "body": {"swarm": {}}}, {"code": 200, "body": {}},
            {"code": 401, "body": "no"}, {"code": 200, "body": {"swarm": {}}}]});
        assert!(passes_on(&batch, 200));
        assert_eq!(forwarded(&t, batch, 200, results).await, 2);
        // A batch of reads only: nothing to pass on, answered on the worker that ran it.
        let reads = json!({"method": "batch", "params": {"requests": [
            m("retrieve"), m("info"), m("get_expiries")]}});
        assert!(!passes_on(&reads, 200));
    }
}
