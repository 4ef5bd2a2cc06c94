//! `revoke_subaccount` / `unrevoke_subaccount`: the account itself (never a subaccount)
//! revokes subaccount tokens, or lifts revocations. Recursive like the other writes: every
//! member of the swarm applies it and signs `pubkey_hex ‖ timestamp ‖ token bytes…`.

use super::*;
use crate::store::MAX_REVOKED;

/// The tokens of `field`: one or a list, each 36 bytes as base64 (48 characters) or hex (72).
fn tokens(p: &Map<String, Value>, field: &str) -> R<Vec<[u8; TOKEN_LEN]>> {
    let bad = || {
        Reply::bad(format!(
            "invalid {field}: expected base64 or hex-encoded subaccount tag"
        ))
    };
    let list: Vec<&str> = match get(p, field) {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a
            .iter()
            .map(Value::as_str)
            .collect::<Option<_>>()
            .ok_or_else(bad)?,
        _ => return Err(Reply::bad(format!("Required field '{field}' missing"))),
    };
    // Upstream caps revoke only; unrevoke is capped here too (no account holds more than
    // MAX_REVOKED, and each token costs a lookup under the store's write lock).
    if list.len() > MAX_REVOKED {
        return Err(Reply::bad(format!(
            "invalid {field}: cannot {field} more than {MAX_REVOKED} subaccounts at once"
        )));
    }
    list.into_iter()
        .map(|t| {
            let raw = match t.len() {
                48 => STANDARD.decode(t).ok(),
                72 => ::hex::decode(t).ok(),
                _ => None,
            };
            raw.and_then(|r| <[u8; TOKEN_LEN]>::try_from(r.as_slice()).ok())
                .ok_or_else(bad)
        })
        .collect()
}

/// The fields of a `revoke_subaccount` request that make its proof.
const PROOF_FIELDS: [&str; 5] = [
    "pubkey",
    "pubkey_ed25519",
    "timestamp",
    "revoke",
    "signature",
];

/// What the account signs: the method, the timestamp, the tokens.
fn signed_text(what: &str, ts: u64, tokens: &[[u8; TOKEN_LEN]]) -> Vec<u8> {
    let mut msg = format!("{what}{ts}").into_bytes();
    tokens.iter().for_each(|t| msg.extend_from_slice(t));
    msg
}

/// Checks a revocation's proof (a `revoke_subaccount` request as kept with it): signed by
/// `acct`'s own key. Returns its timestamp and tokens; `None` if it proves nothing.
pub fn proven_revocation(acct: &UserPubkey, proof: &[u8]) -> Option<(u64, Vec<[u8; TOKEN_LEN]>)> {
    let Ok(Value::Object(p)) = serde_json::from_slice::<Value>(proof) else {
        return None;
    };
    if pubkey(&p).ok()? != *acct {
        return None;
    }
    let toks = tokens(&p, "revoke").ok()?;
    let ts = required(&p, "timestamp").ok()?;
    let s = signed(&p).ok()??;
    auth::verify(
        acct,
        &s,
        &signed_text("revoke_subaccount", ts, &toks),
        0,
        &never,
    )
    .ok()?;
    Some((ts, toks))
}

/// Handles `revoke_subaccount` (`unrevoke` false) or `unrevoke_subaccount`.
pub(super) fn revoke(
    store: &MessageStore,
    ctx: &Context<'_>,
    p: &Map<String, Value>,
    unrevoke: bool,
) -> R<Reply> {
    let (what, field) = if unrevoke {
        ("unrevoke_subaccount", "unrevoke")
    } else {
        ("revoke_subaccount", "revoke")
    };
    let acct = pubkey(p)?;
    let toks = tokens(p, field)?;
    let ts = required(p, "timestamp")?;
    check_time(what, ts, ctx)?;
    // Signed by the account's key: subaccount fields, if sent, are not even read (upstream's
    // parser does not know them here).
    let mut own = p.clone();
    own.remove("subaccount");
    own.remove("subaccount_sig");
    let s = signed(&own)?.ok_or_else(|| Reply::bad("Required field 'signature' missing"))?;
    auth::verify(&acct, &s, &signed_text(what, ts, &toks), 0, &never)
        .map_err(|e| auth_error(what, e))?;
    let count = if unrevoke {
        Some(store.unrevoke(&acct, &toks).map_err(store_error)?)
    } else {
        // As upstream, revocations hang off an account that holds messages: for one that
        // holds none there is nothing to protect, and nothing is kept (so no key can fill the
        // store with revocations for free).
        if store.usage(&acct).map_err(store_error)?.0 > 0 {
            // Kept with the account's signed request, which members that pull it check.
            let proof = Value::Object(
                PROOF_FIELDS
                    .iter()
                    .filter_map(|k| own.get(*k).map(|v| ((*k).to_owned(), v.clone())))
                    .collect(),
            );
            store
                .revoke(&acct, &toks, ts, proof.to_string().as_bytes())
                .map_err(store_error)?;
        }
        None
    };
    let (hex_pk, ts_s) = (pubkey_hex(&acct), ts.to_string());
    let mut parts: Vec<&[u8]> = Vec::with_capacity(2 + toks.len());
    parts.push(hex_pk.as_bytes());
    parts.push(ts_s.as_bytes());
    toks.iter().for_each(|t| parts.push(t));
    let mut entry = json!({"signature": sign(ctx, &parts)});
    if let Some(c) = count {
        entry["count"] = json!(c);
    }
    Ok(swarm_entry(ctx, entry))
}
