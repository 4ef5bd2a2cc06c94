//! The writes that end messages or change their expiry: `delete`, `delete_all`,
//! `delete_before`, `expire` and `expire_all`. Each that ended or shortened a message keeps the
//! account's signed request (`MessageStore::keep_refutation`), so that a storage test cannot
//! hold against this node a message the account itself ended: [`refutes`] is how a tester
//! checks such a request.

use super::*;
use crate::storage_test::Ack;

/// Most hashes one `delete` or `expire` may name (each is a lookup under the store's write
/// lock, and the request is kept with what it ended).
pub const MAX_HASHES: usize = 1000;

/// What the account signs for each method (upstream's strings).
fn text_delete(hs: &[String]) -> String {
    ["delete".to_owned()]
        .into_iter()
        .chain(hs.iter().cloned())
        .collect()
}

fn text_delete_all(ns: NsFilter, ts: u64) -> String {
    format!("delete_all{}{ts}", ns_string(ns))
}

fn text_delete_before(ns: NsFilter, before: u64) -> String {
    format!("delete_before{}{before}", ns_string(ns))
}

fn text_expire_all(ns: NsFilter, expiry: u64) -> String {
    format!("expire_all{}{expiry}", ns_string(ns))
}

fn text_expire(word: &str, expiry: u64, hs: &[String]) -> String {
    format!("expire{word}{expiry}{}", hs.concat())
}

/// Keeps `p`, a request of `method` that ended or shortened messages (`hashes` when it named
/// them, else all of the account's it covered): only the fields checking its signature needs,
/// each of the type it must have (a client may add anything, of any size, to a request).
fn keep(
    store: &MessageStore,
    ctx: &Context<'_>,
    acct: &UserPubkey,
    method: &str,
    p: &Map<String, Value>,
    hashes: Option<&[String]>,
) -> R<()> {
    let mut kept = Map::new();
    kept.insert("pubkey".into(), json!(pubkey_hex(acct)));
    let short = |v: &Value| v.as_str().is_some_and(|s| s.len() <= 200);
    for k in [
        "pubkey_ed25519",
        "subaccount",
        "subaccount_sig",
        "signature",
    ] {
        if let Some(v) = p.get(k).filter(|v| short(v)) {
            kept.insert(k.into(), v.clone());
        }
    }
    if let Ok(hs) = super::hashes(p) {
        kept.insert("messages".into(), json!(hs));
    }
    for k in ["timestamp", "before"] {
        if let Ok(Some(n)) = uint(p, k) {
            kept.insert(k.into(), json!(n));
        }
    }
    if let Ok(e) = expiry_of(p) {
        kept.insert("expiry".into(), json!(e));
    }
    match ns_filter(p) {
        Ok(NsFilter::All) => {
            kept.insert("namespace".into(), json!("all"));
        }
        Ok(NsFilter::One(n)) => {
            kept.insert("namespace".into(), json!(n));
        }
        Err(_) => {}
    }
    for k in ["shorten", "extend"] {
        if let Some(b) = get(p, k).and_then(Value::as_bool) {
            kept.insert(k.into(), json!(b));
        }
    }
    store
        .keep_refutation(acct, method, &Value::Object(kept), ctx.now_ms, hashes)
        .map_err(store_error)
}

/// An `expire`'s expiry: a number, or a list of one (the single-expiry form).
fn expiry_of(p: &Map<String, Value>) -> R<u64> {
    match get(p, "expiry") {
        Some(Value::Array(a)) if a.len() == 1 => a[0]
            .as_u64()
            .ok_or_else(|| Reply::bad("expiry must be an integer")),
        Some(Value::Array(_)) => Err(Reply::err(403, "multiple expiries are not supported")),
        _ => required(p, "expiry"),
    }
}

/// Whether `params` is a request of `method`, signed by the account (or a subaccount it
/// allowed to delete), that ended the message `ack` acknowledged before `now_ms`: it named the
/// message, or covered it (its namespace, and a message acknowledged before the request could
/// have been applied), and deleted it or left it expired by `now_ms`.
pub fn refutes(method: &str, params: &Value, ack: &Ack, now_ms: u64) -> bool {
    let Value::Object(p) = params else {
        return false;
    };
    if pubkey(p).ok() != Some(ack.account) {
        return false;
    }
    let covers = |ns: NsFilter| matches!(ns, NsFilter::All) || ns == NsFilter::One(ack.namespace);
    let signed_for = |text: String, need: u8| {
        signed(p)
            .ok()
            .flatten()
            .is_some_and(|s| auth::verify(&ack.account, &s, text.as_bytes(), need, &never).is_ok())
    };
    match method {
        "delete" => hashes(p)
            .is_ok_and(|hs| hs.contains(&ack.hash) && signed_for(text_delete(&hs), flags::DELETE)),
        "delete_all" => match (ns_filter(p), required(p, "timestamp")) {
            (Ok(ns), Ok(ts)) => {
                covers(ns)
                    && ack.at <= ts.saturating_add(SIGNATURE_TOLERANCE)
                    && signed_for(text_delete_all(ns, ts), flags::DELETE)
            }
            _ => false,
        },
        "delete_before" => match (ns_filter(p), required(p, "before")) {
            (Ok(ns), Ok(before)) => {
                covers(ns)
                    && ack.timestamp <= before
                    && signed_for(text_delete_before(ns, before), flags::DELETE)
            }
            _ => false,
        },
        "expire_all" => match (ns_filter(p), required(p, "expiry")) {
            (Ok(ns), Ok(expiry)) => {
                covers(ns)
                    && expiry <= now_ms.saturating_add(SIGNATURE_TOLERANCE)
                    && ack.at <= expiry.saturating_add(SIGNATURE_TOLERANCE)
                    && signed_for(text_expire_all(ns, expiry), flags::DELETE)
            }
            _ => false,
        },
        "expire" => {
            let (Ok(hs), Ok(expiry)) = (hashes(p), expiry_of(p)) else {
                return false;
            };
            let shorten = get(p, "shorten").and_then(Value::as_bool).unwrap_or(false);
            let extend = get(p, "extend").and_then(Value::as_bool).unwrap_or(false);
            let word = match (shorten, extend) {
                (false, false) => "",
                (true, false) => "shorten",
                // Only ever later: it ends nothing.
                _ => return false,
            };
            // Shortening needs the right to delete (a subaccount without it only extends).
            hs.contains(&ack.hash)
                && expiry <= now_ms.saturating_add(SIGNATURE_TOLERANCE)
                && signed_for(text_expire(word, expiry, &hs), flags::WRITE | flags::DELETE)
        }
        _ => false,
    }
}

pub(super) fn delete(store: &MessageStore, ctx: &Context<'_>, p: &Map<String, Value>) -> R<Reply> {
    let acct = pubkey(p)?;
    let hs = hashes(p)?;
    authorise(
        "delete_msgs",
        &acct,
        p,
        text_delete(&hs).as_bytes(),
        flags::DELETE,
        &revoked(store, &acct),
    )?;
    let deleted = store.delete(&acct, &hs).map_err(store_error)?;
    if !deleted.is_empty() {
        keep(store, ctx, &acct, "delete", p, Some(&deleted))?;
    }
    let sig = sign(
        ctx,
        &[
            pubkey_hex(&acct).as_bytes(),
            hs.concat().as_bytes(),
            deleted.concat().as_bytes(),
        ],
    );
    let required = get(p, "required").and_then(Value::as_bool).unwrap_or(false);
    let mut r = swarm_entry(ctx, json!({"deleted": deleted, "signature": sig}));
    if required && deleted.is_empty() {
        r.status = 404;
    }
    Ok(r)
}

/// `"deleted"`/`"updated"`: a sorted list for one namespace, a dict by namespace for all.
fn by_ns(ns: NsFilter, items: &[(Namespace, String)]) -> Value {
    match ns {
        NsFilter::One(_) => json!(items.iter().map(|(_, h)| h).collect::<Vec<_>>()),
        NsFilter::All => {
            let mut m: std::collections::BTreeMap<String, Vec<&String>> = Default::default();
            for (n, h) in items {
                m.entry(n.to_string()).or_default().push(h);
            }
            json!(m)
        }
    }
}

fn sorted_hashes(items: &[(Namespace, String)]) -> String {
    let mut hs: Vec<&str> = items.iter().map(|(_, h)| h.as_str()).collect();
    hs.sort_unstable();
    hs.concat()
}

pub(super) fn delete_all(
    store: &MessageStore,
    ctx: &Context<'_>,
    p: &Map<String, Value>,
) -> R<Reply> {
    let acct = pubkey(p)?;
    let ns = ns_filter(p)?;
    let ts = required(p, "timestamp")?;
    check_time("delete_all", ts, ctx)?;
    authorise(
        "delete_all",
        &acct,
        p,
        text_delete_all(ns, ts).as_bytes(),
        flags::DELETE,
        &revoked(store, &acct),
    )?;
    let deleted = store.delete_all(&acct, ns).map_err(store_error)?;
    if !deleted.is_empty() {
        keep(store, ctx, &acct, "delete_all", p, None)?;
    }
    let sig = sign(
        ctx,
        &[
            pubkey_hex(&acct).as_bytes(),
            ts.to_string().as_bytes(),
            sorted_hashes(&deleted).as_bytes(),
        ],
    );
    Ok(swarm_entry(
        ctx,
        json!({"deleted": by_ns(ns, &deleted), "signature": sig}),
    ))
}

pub(super) fn delete_before(
    store: &MessageStore,
    ctx: &Context<'_>,
    p: &Map<String, Value>,
) -> R<Reply> {
    let acct = pubkey(p)?;
    let ns = ns_filter(p)?;
    let before = required(p, "before")?;
    if before > ctx.now_ms.saturating_add(SIGNATURE_TOLERANCE) {
        return Err(Reply::err(
            401,
            "delete_before: 'before' is too far in the future",
        ));
    }
    authorise(
        "delete_before",
        &acct,
        p,
        text_delete_before(ns, before).as_bytes(),
        flags::DELETE,
        &revoked(store, &acct),
    )?;
    let deleted = store
        .delete_before(&acct, ns, before)
        .map_err(store_error)?;
    if !deleted.is_empty() {
        keep(store, ctx, &acct, "delete_before", p, None)?;
    }
    let sig = sign(
        ctx,
        &[
            pubkey_hex(&acct).as_bytes(),
            before.to_string().as_bytes(),
            sorted_hashes(&deleted).as_bytes(),
        ],
    );
    Ok(swarm_entry(
        ctx,
        json!({"deleted": by_ns(ns, &deleted), "signature": sig}),
    ))
}

pub(super) fn expire_all(
    store: &MessageStore,
    ctx: &Context<'_>,
    p: &Map<String, Value>,
) -> R<Reply> {
    let acct = pubkey(p)?;
    let ns = ns_filter(p)?;
    let expiry = required(p, "expiry")?;
    if expiry < ctx.now_ms.saturating_sub(SIGNATURE_TOLERANCE) {
        return Err(Reply::err(
            406,
            "expire_all timestamp should be >= current time",
        ));
    }
    authorise(
        "expire_all",
        &acct,
        p,
        text_expire_all(ns, expiry).as_bytes(),
        flags::DELETE,
        &revoked(store, &acct),
    )?;
    let updated = store.expire_all(&acct, ns, expiry).map_err(store_error)?;
    if !updated.is_empty() {
        keep(store, ctx, &acct, "expire_all", p, None)?;
    }
    let sig = sign(
        ctx,
        &[
            pubkey_hex(&acct).as_bytes(),
            expiry.to_string().as_bytes(),
            sorted_hashes(&updated).as_bytes(),
        ],
    );
    Ok(swarm_entry(
        ctx,
        json!({"updated": by_ns(ns, &updated), "signature": sig}),
    ))
}

pub(super) fn expire(store: &MessageStore, ctx: &Context<'_>, p: &Map<String, Value>) -> R<Reply> {
    let acct = pubkey(p)?;
    let hs = hashes(p)?;
    // One value in a list is the single-expiry form.
    let expiry = expiry_of(p)?;
    let shorten = get(p, "shorten").and_then(Value::as_bool).unwrap_or(false);
    let extend = get(p, "extend").and_then(Value::as_bool).unwrap_or(false);
    let word = match (shorten, extend) {
        (true, true) => return Err(Reply::bad("shorten and extend are mutually exclusive")),
        (true, false) => "shorten",
        (false, true) => "extend",
        (false, false) => "",
    };
    // As upstream: Write is always needed; a subaccount without Delete may only extend.
    let can_delete = signed(p)?
        .and_then(|s| s.subaccount)
        .is_none_or(|sub| sub.token[1] & flags::DELETE != 0);
    if shorten && !can_delete {
        return Err(Reply::bad(
            "expire: shorten parameter cannot be used with this subaccount token (missing delete access)",
        ));
    }
    let mode = if shorten {
        ExpireMode::Shorten
    } else if extend || !can_delete {
        ExpireMode::Extend
    } else {
        ExpireMode::Set
    };
    if expiry < ctx.now_ms.saturating_sub(SIGNATURE_TOLERANCE) {
        return Err(Reply::err(
            401,
            "expire: timestamp should be >= current time",
        ));
    }
    authorise(
        "expire",
        &acct,
        p,
        text_expire(word, expiry, &hs).as_bytes(),
        flags::WRITE,
        &revoked(store, &acct),
    )?;
    let applied = expiry.min(ctx.now_ms.saturating_add(TTL_MAXIMUM_PRIVATE));
    let changes: Vec<(String, u64)> = hs.iter().map(|h| (h.clone(), applied)).collect();
    let before = if mode == ExpireMode::Extend {
        Default::default()
    } else {
        store.get_expiries(&acct, &hs).map_err(store_error)?
    };
    let (updated, unchanged) = store.expire(&acct, &changes, mode).map_err(store_error)?;
    // Kept only for the messages it made expire sooner.
    let shortened: Vec<String> = updated
        .iter()
        .filter(|(h, e)| before.get(h).is_some_and(|was| e < was))
        .map(|(h, _)| h.clone())
        .collect();
    if !shortened.is_empty() {
        keep(store, ctx, &acct, "expire", p, Some(&shortened))?;
    }
    let updated_hashes: Vec<&str> = updated.iter().map(|(h, _)| h.as_str()).collect();
    let unchanged_concat: String = unchanged.iter().map(|(h, e)| format!("{h}{e}")).collect();
    let sig = sign(
        ctx,
        &[
            pubkey_hex(&acct).as_bytes(),
            applied.to_string().as_bytes(),
            hs.concat().as_bytes(),
            updated_hashes.concat().as_bytes(),
            unchanged_concat.as_bytes(),
        ],
    );
    let mut entry = json!({"updated": updated_hashes, "expiry": applied, "signature": sig});
    if shorten || extend {
        entry["unchanged"] = json!(unchanged
            .iter()
            .map(|(h, e)| (h.clone(), *e))
            .collect::<std::collections::BTreeMap<_, _>>());
    }
    Ok(swarm_entry(ctx, entry))
}
