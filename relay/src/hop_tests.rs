//! Tests of [`super`]: layers peeled and routed as upstream does, bad input refused with
//! upstream's replies, and whole paths built by the client and walked node by node.

use super::*;
use crate::client::{
    build, choose_path, open_answer, Answer, Destination, HttpServer, KeyTables, Node,
};
use crate::crypto::SISPOP_GCM_SALT;
use crate::encode_payload;
use serde_json::json;

struct TestNode {
    key: NodeKey,
    pub_: Node,
}

fn node(i: u8) -> TestNode {
    let seed = [i; 32];
    let ed = ed25519_dalek::SigningKey::from_bytes(&seed)
        .verifying_key()
        .to_bytes();
    TestNode {
        key: NodeKey::from_ed25519_seed(&seed).expect("key"),
        pub_: Node::from_ed25519(ed).expect("a point"),
    }
}

fn rng() -> rand_core::OsRng {
    rand_core::OsRng
}

/// Walks a request through `nodes` as the nodes would; returns what the last one sees.
fn walk(nodes: &[TestNode], body: &[u8]) -> Result<Hop, HopError> {
    let mut layer = parse_entry(body)?;
    for (i, n) in nodes.iter().enumerate() {
        match peel(&n.key, &layer, SISPOP_GCM_SALT)? {
            Hop::Relay { next, layer: l, .. } => {
                assert_eq!(next, nodes[i + 1].pub_.ed25519, "routes to the next node");
                // Across the node network and back.
                layer = decode_layer(&encode_layer(&l))?;
                assert_eq!(layer, l);
            }
            done => {
                assert_eq!(i, nodes.len() - 1, "ends at the last node");
                return Ok(done);
            }
        }
    }
    unreachable!("the path ended without a destination")
}

#[test]
fn three_hops_with_tables_for_some_nodes_only() {
    // Node 2 has a table (seen twice on a path of its own), nodes 1 and 3 not yet: the
    // layers' agreements come from a table and from AWS-LC, interleaved, in path order.
    let nodes = [node(1), node(2), node(3)];
    let path: Vec<Node> = nodes.iter().map(|n| n.pub_).collect();
    let tables = KeyTables::default();
    let req = br#"{"method":"retrieve","params":{}}"#;
    let (dest, salt) = (&Destination::Storage, SISPOP_GCM_SALT);
    let make = |p: &[Node]| {
        build(
            p,
            dest,
            req,
            EncType::XChaCha20,
            salt,
            &mut rng(),
            Some(&tables),
        )
        .expect("build")
    };
    for _ in 0..2 {
        make(&path[1..2]);
    }
    assert_eq!(tables.len(), 1);
    let built = make(&path);
    let Hop::Final { request, key, .. } = walk(&nodes, &built.body).expect("walk") else {
        panic!("not final");
    };
    assert_eq!(request, req);
    answer_opens(&built, &key, 200, json!({"messages": []}));
}

#[test]
fn three_hops_to_a_storage_node_and_back() {
    let nodes = [node(1), node(2), node(3)];
    let path: Vec<Node> = nodes.iter().map(|n| n.pub_).collect();
    // Without key tables, then with: the first request through `tables` sees the nodes
    // once, the second builds their tables, the third uses them.
    let tables = KeyTables::default();
    for (enc, round) in [EncType::XChaCha20, EncType::AesGcm]
        .into_iter()
        .flat_map(|e| (0..4).map(move |r| (e, r)))
    {
        let req = br#"{"method":"get_swarm","params":{}}"#;
        let (dest, salt) = (&Destination::Storage, SISPOP_GCM_SALT);
        let built = match round {
            0 => build(&path, dest, req, enc, salt, &mut rng(), None),
            _ => build(&path, dest, req, enc, salt, &mut rng(), Some(&tables)),
        }
        .expect("build");
        let first_rounds = enc == EncType::XChaCha20 && round < 2;
        assert_eq!(tables.len(), if first_rounds { 0 } else { 3 });
        let Hop::Final { request, opts, key } = walk(&nodes, &built.body).expect("walk") else {
            panic!("not final");
        };
        assert_eq!(request, req);
        assert_eq!(opts, FinalOptions::default());
        // The destination answers with JSON; it comes back double-encoded and opens.
        answer_opens(&built, &key, 421, json!({"snodes": []}));
    }
}

/// The destination's JSON answer, wrapped by its layer's key, comes back (with status 200 from
/// the entry) and opens to the same status and body at the client.
fn answer_opens(built: &crate::client::Built, key: &ReplyKey, status: u16, body: Value) {
    let reply = key.wrap(status, &body, FinalOptions::default(), &mut rng());
    assert_eq!(reply.status, 200);
    assert_eq!(
        open_answer(&built.reply, reply.status, &reply.body),
        Ok(Answer::Destination { status, body })
    );
}

#[test]
fn final_answer_is_the_upstream_shape() {
    let key = ReplyKey::new(EncType::XChaCha20, [3u8; 32]);
    let raw = FinalOptions {
        json: false,
        base64: false,
    };
    let r = key.wrap(200, &json!({"a": 1}), raw, &mut rng());
    assert_eq!(
        key.decrypt(&r.body).expect("opens"),
        br#"{"body":"{\"a\":1}","status":200}"#
    );
    let embedded = FinalOptions {
        json: true,
        base64: false,
    };
    let r = key.wrap(200, &json!({"a": 1}), embedded, &mut rng());
    assert_eq!(
        key.decrypt(&r.body).expect("opens"),
        br#"{"body":{"a":1},"status":200}"#
    );
    let r = key.wrap(503, &json!("not ready"), embedded, &mut rng());
    assert_eq!(
        key.decrypt(&r.body).expect("opens"),
        br#"{"body":"not ready","status":503}"#
    );
}

#[test]
fn http_destination() {
    let nodes = [node(1), node(2), node(3)];
    let server = node(9);
    let path: Vec<Node> = nodes.iter().map(|n| n.pub_).collect();
    let dest = Destination::Http(HttpServer {
        protocol: Protocol::Http,
        host: "127.0.0.1".into(),
        port: 8080,
        target: "/oxen/v4/lsrpc".into(),
        x25519: server.pub_.x25519,
    });
    // One-off, then with tables (built on the second request, used on the third): the
    // server's layer is among those the tables cover.
    let tables = KeyTables::default();
    for round in 0..4 {
        let with = (round > 0).then_some(&tables);
        let built = build(
            &path,
            &dest,
            b"l2:{}e",
            EncType::XChaCha20,
            SISPOP_GCM_SALT,
            &mut rng(),
            with,
        )
        .expect("build");
        http_layers_open(&nodes, &server, &built);
    }
    assert_eq!(tables.len(), 4);
}

fn http_layers_open(nodes: &[TestNode], server: &TestNode, built: &crate::client::Built) {
    let Hop::Http {
        protocol,
        host,
        port,
        target,
        plaintext,
        ..
    } = walk(nodes, &built.body).expect("walk")
    else {
        panic!("not http");
    };
    assert_eq!(
        (protocol, host.as_str(), port, target.as_str()),
        (Protocol::Http, "127.0.0.1", 8080, "/oxen/v4/lsrpc")
    );
    // The server gets the whole plaintext and opens its own layer.
    let p = crate::decode_payload(&plaintext).expect("payload");
    let layer = Layer {
        data: p.blob.to_vec(),
        ephemeral_key: hex32(p.json.get("ephemeral_key")).expect("key"),
        enc: enc_type(p.json.get("enc_type")).expect("enc"),
        hop_no: 0,
    };
    let s = server.key.secret.agree(&layer.ephemeral_key).expect("s");
    let k = crypto::layer_key(
        layer.enc,
        &s,
        &layer.ephemeral_key,
        &server.pub_.x25519,
        SISPOP_GCM_SALT,
    );
    assert_eq!(
        crypto::decrypt(layer.enc, &k, &layer.data).expect("opens"),
        b"l2:{}e"
    );
}

/// One layer for `n` whose plaintext is `plain`.
fn layer_for(n: &TestNode, plain: &[u8], enc: EncType) -> Layer {
    let (secret, public) = crypto::ephemeral(&mut rng());
    let s = crypto::shared_secret(&secret, &n.pub_.x25519).expect("s");
    let k = crypto::layer_key(enc, &s, &public, &n.pub_.x25519, SISPOP_GCM_SALT);
    Layer {
        data: crypto::encrypt(enc, &k, plain, &mut rng()),
        ephemeral_key: public,
        enc,
        hop_no: 1,
    }
}

fn encrypted_error(e: HopError, text: &str) {
    let (HopError::Json(key) | HopError::Url(key)) = &e else {
        panic!("expected an encrypted error, got {e}");
    };
    let r = e.reply(&mut rng());
    assert_eq!(r.status, 200, "wrapped for the client, as upstream");
    assert_eq!(
        open_answer(key, r.status, &r.body),
        Ok(Answer::Destination {
            status: 400,
            body: json!(text)
        })
    );
}

#[test]
fn bad_entries_are_plain_400s() {
    for body in [
        &b""[..],
        b"\x01\x00",
        b"\xff\xff\x00\x00abc{}",
        b"\x00\x00\x00\x00not json",
        b"\x00\x00\x00\x00{}",
        b"\x00\x00\x00\x00{\"ephemeral_key\":\"zz\"}",
        b"\x00\x00\x00\x00{\"ephemeral_key\":\"0101\"}",
    ] {
        let e = parse_entry(body).expect_err("refused");
        assert!(matches!(e, HopError::Parse(_)), "{e}");
        let r = e.reply(&mut rng());
        assert_eq!(r.status, 400);
        assert!(r.body.starts_with(b"Error parsing onion request: "));
    }
    let key = hex::encode([9u8; 32]);
    let body = encode_payload(
        b"x",
        &obj(json!({"ephemeral_key": key, "enc_type": "aes-cbc"})),
    );
    assert!(matches!(parse_entry(&body), Err(HopError::Parse(_))));
    let body = encode_payload(b"x", &obj(json!({"ephemeral_key": key, "hop_no": -5})));
    assert_eq!(parse_entry(&body).expect("ok").hop_no, 0);
    let big = vec![0u8; crate::MAX_PAYLOAD + 1];
    assert!(matches!(parse_entry(&big), Err(HopError::Parse(_))));
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

#[test]
fn bad_layers() {
    let n = node(4);
    let good = layer_for(
        &n,
        &encode_payload(b"{}", &obj(json!({"headers": {}}))),
        EncType::XChaCha20,
    );
    assert!(matches!(
        peel(&n.key, &good, SISPOP_GCM_SALT),
        Ok(Hop::Final { .. })
    ));
    // Fails authentication: a flipped byte, or a layer for another node.
    let mut flipped = good.clone();
    flipped.data[30] ^= 1;
    assert!(matches!(
        peel(&n.key, &flipped, SISPOP_GCM_SALT),
        Err(HopError::Ciphertext)
    ));
    assert!(matches!(
        peel(&node(5).key, &good, SISPOP_GCM_SALT),
        Err(HopError::Ciphertext)
    ));
    // A layer under our salt does not open under a stranger's; one under the Oxen
    // lineage's salt opens at a Sispop node, and its answer opens with the client's key.
    let gcm = layer_for(
        &n,
        &encode_payload(b"{}", &obj(json!({"headers": {}}))),
        EncType::AesGcm,
    );
    assert!(matches!(
        peel(&n.key, &gcm, b"OTHER"),
        Err(HopError::Ciphertext)
    ));
    let (secret, public) = crypto::ephemeral(&mut rng());
    let shared = crypto::shared_secret(&secret, &n.pub_.x25519).expect("s");
    let oxen_key = crypto::layer_key(
        EncType::AesGcm,
        &shared,
        &public,
        &n.pub_.x25519,
        crypto::OXEN_GCM_SALT,
    );
    let oxen = Layer {
        data: crypto::encrypt(
            EncType::AesGcm,
            &oxen_key,
            &encode_payload(b"{}", &obj(json!({"headers": {}}))),
            &mut rng(),
        ),
        ephemeral_key: public,
        enc: EncType::AesGcm,
        hop_no: 1,
    };
    let Ok(Hop::Final { key, .. }) = peel(&n.key, &oxen, SISPOP_GCM_SALT) else {
        panic!("an Oxen-lineage aes-gcm layer opens");
    };
    let answer = key.wrap(200, &json!("ok"), FinalOptions::default(), &mut rng());
    assert_eq!(
        open_answer(
            &ReplyKey::new(EncType::AesGcm, oxen_key),
            answer.status,
            &answer.body
        ),
        Ok(Answer::Destination {
            status: 200,
            body: json!("ok")
        })
    );
    // Truncated.
    let mut short = good.clone();
    short.data.truncate(10);
    assert!(matches!(
        peel(&n.key, &short, SISPOP_GCM_SALT),
        Err(HopError::Ciphertext)
    ));
    // A low-order ephemeral key.
    let mut zero = good.clone();
    zero.ephemeral_key = [0u8; 32];
    assert!(matches!(
        peel(&n.key, &zero, SISPOP_GCM_SALT),
        Err(HopError::Ciphertext)
    ));
    // Too many hops.
    let mut far = good.clone();
    far.hop_no = MAX_HOPS + 1;
    let e = peel(&n.key, &far, SISPOP_GCM_SALT).expect_err("refused");
    assert_eq!(
        e.reply(&mut rng()),
        Reply::plain(400, "onion request max path length exceeded")
    );
    far.hop_no = MAX_HOPS;
    assert!(peel(&n.key, &far, SISPOP_GCM_SALT).is_ok());
    // Opens, but what is inside is not a request.
    let inner: [&[u8]; 8] = [
        b"garbage",
        b"\x05\x00\x00\x00ab",
        b"\x00\x00\x00\x00{\"destination\":\"00\"}",
        b"\x00\x00\x00\x00[]",
        b"\x00\x00\x00\x00{}",
        b"\x00\x00\x00\x00{\"host\":\"a.b\"}",
        b"\x00\x00\x00\x00{\"host\":\"a.b\",\"target\":\"/oxen/v4/lsrpc\",\"port\":70000}",
        b"\x00\x00\x00\x00{\"host\":\"a.b\",\"target\":\"/oxen/v4/lsrpc\",\"protocol\":5}",
    ];
    for plain in inner {
        let l = layer_for(&n, plain, EncType::XChaCha20);
        encrypted_error(
            peel(&n.key, &l, SISPOP_GCM_SALT).expect_err("refused"),
            "Invalid json",
        );
    }
    let d = hex::encode(node(6).pub_.ed25519);
    let e = hex::encode([7u8; 32]);
    let l = layer_for(
        &n,
        &encode_payload(
            b"",
            &obj(json!({"destination": d, "ephemeral_key": e, "enc_type": "rot13"})),
        ),
        EncType::XChaCha20,
    );
    encrypted_error(
        peel(&n.key, &l, SISPOP_GCM_SALT).expect_err("refused"),
        "Invalid json",
    );
    // HTTP destinations outside the allowed targets.
    for (protocol, target, host) in [
        ("ftp", "/oxen/v4/lsrpc", "a.b"),
        ("https", "/admin", "a.b"),
        ("https", "/oxen/v4/lsrpc?x=1", "a.b"),
        ("https", "/oxen/../admin/lsrpc", "a.b"),
        ("https", "/oxen/v4/lsrpc", "a.b/evil"),
        ("https", "/oxen/v4/lsrpc", ""),
    ] {
        let l = layer_for(
            &n,
            &encode_payload(
                b"",
                &obj(json!({"host": host, "target": target, "protocol": protocol})),
            ),
            EncType::AesGcm,
        );
        encrypted_error(
            peel(&n.key, &l, SISPOP_GCM_SALT).expect_err("refused"),
            "Invalid url",
        );
    }
}

#[test]
fn bad_node_to_node_layers() {
    for bytes in [
        &b""[..],
        b"garbage",
        b"d4:data3:abce",
        b"d4:data3:abc13:ephemeral_key3:abce",
        b"d4:data3:abc8:enc_type5:rot1313:ephemeral_key32:01234567890123456789012345678901e",
        b"d4:data3:abc13:ephemeral_key32:012345678901234567890123456789016:hop_no3:abce",
        b"d4:data3:abc13:ephemeral_key32:01234567890123456789012345678901e trailing",
        b"d4:data3:abc4:data3:abc13:ephemeral_key32:01234567890123456789012345678901e",
        b"d13:ephemeral_key32:012345678901234567890123456789014:data3:abce",
        b"d4:data03:abc13:ephemeral_key32:01234567890123456789012345678901e",
        b"d4:data99:abc13:ephemeral_key32:01234567890123456789012345678901e",
    ] {
        assert!(
            matches!(decode_layer(bytes), Err(HopError::Parse(_))),
            "{bytes:?}"
        );
    }
    let ok = b"d4:data3:abc13:ephemeral_key32:012345678901234567890123456789016:hop_noi-3ee";
    let l = decode_layer(ok).expect("decodes");
    assert_eq!(
        (l.enc, l.hop_no),
        (EncType::AesGcm, 1),
        "defaults as upstream"
    );
    assert_eq!(l.data, b"abc");
    // Nesting is refused without being walked, however deep.
    let mut deep = b"d4:data3:abc1:x".to_vec();
    deep.extend(std::iter::repeat_n(b'l', 1_000_000));
    assert!(matches!(decode_layer(&deep), Err(HopError::Parse(_))));
    // What we send decodes, at every hop number.
    for hop_no in [1, 15, 16, u32::MAX] {
        let l = Layer {
            data: vec![1, 2, 3],
            ephemeral_key: [5u8; 32],
            enc: EncType::XChaCha20,
            hop_no,
        };
        assert_eq!(decode_layer(&encode_layer(&l)).expect("decodes"), l);
    }
}

/// A layer of `MAX_PAYLOAD` bytes made of distinct keys in ascending order, `data` and
/// `ephemeral_key` among them: everything a decoder must read to the end.
fn widest_layer() -> Vec<u8> {
    let mut b = b"d".to_vec();
    let mut i = 0u64;
    let mut put_fields = true;
    // 10-character keys "k000000000" on (after "ephemeral_key", before "hop_no").
    while b.len() + 64 < crate::MAX_PAYLOAD {
        if put_fields {
            b.extend_from_slice(b"4:data3:abc13:ephemeral_key32:01234567890123456789012345678901");
            put_fields = false;
        }
        b.extend_from_slice(format!("10:k{i:09}0:").as_bytes());
        i += 1;
    }
    b.push(b'e');
    b
}

#[test]
fn the_widest_layer_decodes_in_linear_time() {
    let wide = widest_layer();
    assert!(wide.len() > crate::MAX_PAYLOAD - 100 && wide.len() <= crate::MAX_PAYLOAD);
    // On a thread of its own, so a decoder that takes far too long fails the test instead of
    // holding it.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let started = std::time::Instant::now();
        let l = decode_layer(&wide).map(|l| l.data);
        let _ = tx.send((l, started.elapsed()));
    });
    // Linear: about 20 ms optimised, a few hundred ms in a debug build. The quadratic check
    // of repeated keys it replaced took 0.3 s for 192 kB and would take over an hour here.
    let (l, took) = rx
        .recv_timeout(std::time::Duration::from_secs(5))
        .expect("a 10 MiB layer decodes within 5 s");
    assert_eq!(
        l.expect("a valid layer with 800,000 keys it ignores"),
        b"abc"
    );
    println!("10 MiB layer of distinct keys decoded in {took:?}");
    // Keys out of order (which a linear check of repeats needs) are refused where they occur.
    let mut unsorted = b"d".to_vec();
    for i in (0..16_000u32).rev() {
        unsorted.extend_from_slice(format!("10:k{i:09}0:").as_bytes());
    }
    unsorted.push(b'e');
    let started = std::time::Instant::now();
    assert!(matches!(decode_layer(&unsorted), Err(HopError::Parse(_))));
    assert!(started.elapsed() < std::time::Duration::from_millis(100));
}

#[test]
fn paths() {
    let nodes: Vec<Node> = (1..=6).map(|i| node(i).pub_).collect();
    let dest = nodes[2];
    for _ in 0..50 {
        let p = choose_path(&nodes, 3, Some(dest), &mut rng()).expect("path");
        assert_eq!(p.len(), 3);
        assert_eq!(p[2], dest);
        assert!(p[0] != p[1] && p[0] != dest && p[1] != dest, "distinct");
        let p = choose_path(&nodes, 3, None, &mut rng()).expect("path");
        assert!(p[0] != p[1] && p[1] != p[2] && p[0] != p[2]);
    }
    assert!(choose_path(&nodes[1..3], 3, Some(dest), &mut rng()).is_none());
    assert!(choose_path(&[dest, dest, dest], 2, Some(dest), &mut rng()).is_none());
    assert!(choose_path(&nodes, 0, None, &mut rng()).is_none());
}
