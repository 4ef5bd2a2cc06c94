//! `ifelse` (run one request or another depending on this node's hard fork, storage version
//! and height) and `oxend_request` (a few read-only daemon RPC methods, through the node).

use super::*;

/// The daemon RPC methods `oxend_request` passes on (upstream's allow-list).
pub const OXEND_ENDPOINTS: [&str; 2] = ["get_service_nodes", "ons_resolve"];

/// A condition's version-like list (`[major, minor]`, `[a, b, c]`): missing places are 0; an
/// empty list is no condition.
fn version<const N: usize>(c: &Map<String, Value>, key: &str) -> R<Option<[i64; N]>> {
    let bad = || {
        Reply::bad(format!(
            "Invalid ifelse request: {key} must be a list of integers"
        ))
    };
    let list = match c.get(key) {
        None | Some(Value::Null) => return Ok(None),
        // A single number is the list of one (`19` is `[19, 0]`).
        Some(n @ Value::Number(_)) => std::slice::from_ref(n),
        Some(Value::Array(a)) => a.as_slice(),
        Some(_) => return Err(bad()),
    };
    if list.is_empty() {
        return Ok(None);
    }
    let mut out = [0i64; N];
    for (o, x) in out.iter_mut().zip(list) {
        *o = x.as_i64().ok_or_else(bad)?;
    }
    Ok(Some(out))
}

fn height_cond(c: &Map<String, Value>, key: &str) -> R<Option<i64>> {
    c.get(key)
        .filter(|v| !v.is_null())
        .map(|v| {
            v.as_i64().ok_or_else(|| {
                Reply::bad(format!("Invalid ifelse request: {key} must be an integer"))
            })
        })
        .transpose()
}

/// A branch: `{"method", "params"}`, or absent.
fn branch<'a>(p: &'a Map<String, Value>, key: &str) -> R<Option<(&'a str, &'a Value)>> {
    let Some(b) = get(p, key) else {
        return Ok(None);
    };
    let b = b
        .as_object()
        .ok_or_else(|| Reply::bad(format!("Invalid ifelse request: {key} must be an object")))?;
    match (b.get("method").and_then(Value::as_str), b.get("params")) {
        // Checked before either branch runs, as upstream parses both first.
        (Some(m), Some(_)) if !METHODS.contains(&m) => Err(Reply::bad(format!(
            "Invalid ifelse request method \"{key}\""
        ))),
        (Some(m), Some(params)) => Ok(Some((m, params))),
        _ => Err(Reply::bad(format!(
            "Invalid ifelse request: {key} must have method/params keys"
        ))),
    }
}

/// `ifelse`: `{"if": {conditions}, "then": request, "else": request}`; the conditions are
/// ANDed. Always 200 with `{"hf", "v", "height", "condition", ["result": {"code", "body"}]}`.
pub(super) fn ifelse(store: &MessageStore, ctx: &Context<'_>, p: &Map<String, Value>) -> Reply {
    match ifelse_inner(store, ctx, p) {
        Ok(r) | Err(r) => r,
    }
}

fn ifelse_inner(store: &MessageStore, ctx: &Context<'_>, p: &Map<String, Value>) -> R<Reply> {
    let c = get(p, "if")
        .and_then(Value::as_object)
        .ok_or_else(|| Reply::bad("Invalid ifelse request: no valid \"if\" field"))?;
    let (hf_ge, hf_lt) = (
        version::<2>(c, "hf_at_least")?,
        version::<2>(c, "hf_before")?,
    );
    let (v_ge, v_lt) = (version::<3>(c, "v_at_least")?, version::<3>(c, "v_before")?);
    let (h_ge, h_lt) = (
        height_cond(c, "height_at_least")?,
        height_cond(c, "height_before")?,
    );
    if hf_ge.is_none()
        && hf_lt.is_none()
        && v_ge.is_none()
        && v_lt.is_none()
        && h_ge.is_none()
        && h_lt.is_none()
    {
        return Err(Reply::bad(
            "Invalid ifelse request: must specify at least one \"if\" condition",
        ));
    }
    let (then, otherwise) = (branch(p, "then")?, branch(p, "else")?);
    if then.is_none() && otherwise.is_none() {
        return Err(Reply::bad(
            "Invalid ifelse request: at least one of \"then\"/\"else\" required",
        ));
    }
    let hf = [
        i64::try_from(ctx.hf[0]).unwrap_or(i64::MAX),
        i64::try_from(ctx.hf[1]).unwrap_or(i64::MAX),
    ];
    let v = VERSION.map(i64::from);
    let height = i64::try_from(ctx.height).unwrap_or(i64::MAX);
    let condition = hf_ge.is_none_or(|x| hf >= x)
        && hf_lt.is_none_or(|x| hf < x)
        && v_ge.is_none_or(|x| v >= x)
        && v_lt.is_none_or(|x| v < x)
        && h_ge.is_none_or(|x| height >= x)
        && h_lt.is_none_or(|x| height < x);
    let mut out = json!({"hf": ctx.hf, "v": VERSION, "height": ctx.height, "condition": condition});
    if let Some((m, params)) = if condition { then } else { otherwise } {
        // Branches may be meta-requests themselves (JSON nesting is bounded by the parser).
        let r = handle_method(store, ctx, m, params, true);
        out["result"] = json!({"code": r.status, "body": r.body});
    }
    Ok(Reply::ok(out))
}

/// `oxend_request`: `{"endpoint", "params"}` for one of [`OXEND_ENDPOINTS`], answered by the
/// node's daemon side: `{"result": …}`, or 400 with the daemon's error.
pub(super) fn oxend_request(ctx: &Context<'_>, p: &Map<String, Value>) -> R<Reply> {
    let endpoint = get(p, "endpoint")
        .and_then(Value::as_str)
        .ok_or_else(|| Reply::bad("Required field 'endpoint' missing"))?;
    if !OXEND_ENDPOINTS.contains(&endpoint) {
        return Err(Reply::bad(format!("Invalid oxend endpoint '{endpoint}'")));
    }
    let params = get(p, "params").cloned().unwrap_or(Value::Null);
    match (ctx.oxend)(endpoint, &params) {
        Ok(result) => Ok(Reply::ok(json!({"result": result}))),
        Err(e) if e.is_empty() => Err(Reply::err(400, "Unknown oxend error")),
        Err(e) => Err(Reply::err(400, e)),
    }
}
