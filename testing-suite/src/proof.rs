//! Uptime proofs: the HF18+ bencoded proof (reference `service-nodes.md` §5.2), signed with the
//! primary key (Cryptonote Schnorr) and the Ed25519 key over the Keccak-256 of the exact
//! bencoded bytes, and the receiving rules of §5.4 that do not depend on stored state.
//!
//! On the wire (gossip topic `sispop/proofs/1`) a proof is a bencoded dict
//! `{"ed_sig": 64 bytes, "proof": <bencoded proof>, "sig": 64 bytes}`: the fields of upstream's
//! `NOTIFY_BTENCODED_UPTIME_PROOF`, in bencode instead of epee.

use std::net::Ipv4Addr;

use curve25519_dalek::Scalar;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use sispop_chain::crypto::{keccak256, schnorr_sign, schnorr_verify, Signature};
use sispop_chain::params::ServiceNodeTimings;
use sispop_chain::PublicKey;

/// Largest wire message accepted: a proof is about 250 bytes. The bound also caps the nesting
/// depth the bencode decoder can be made to recurse through.
pub const MAX_PROOF_BYTES: usize = 1024;

/// An uptime proof's content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UptimeProof {
    /// Primary (Cryptonote) service node key.
    pub pubkey: PublicKey,
    /// Ed25519 key (equal to the primary key for every node made since Loki 8).
    pub pubkey_ed25519: PublicKey,
    /// The node's public IPv4 address.
    pub public_ip: Ipv4Addr,
    /// Storage server HTTPS port.
    pub storage_https_port: u16,
    /// Storage server OxenMQ port (0 here: storage runs inside the daemon).
    pub storage_omq_port: u16,
    /// Quorumnet port: our libp2p port.
    pub quorumnet_port: u16,
    /// Daemon version.
    pub version: [u16; 3],
    /// Storage server version.
    pub storage_version: [u16; 3],
    /// Lokinet version (0.0.0: no lokinet on Sispop).
    pub lokinet_version: [u16; 3],
    /// Sender's unix time.
    pub timestamp: u64,
}

#[derive(Serialize, Deserialize)]
struct ProofDict {
    ip: String,
    lv: Vec<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pk: Option<ByteBuf>,
    pke: ByteBuf,
    q: u16,
    shp: u16,
    sop: u16,
    sv: Vec<u16>,
    t: u64,
    v: Vec<u16>,
}

#[derive(Serialize, Deserialize)]
struct WireDict {
    ed_sig: ByteBuf,
    proof: ByteBuf,
    sig: ByteBuf,
}

/// A proof as received: its content, the exact bytes that were signed and both signatures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedProof {
    /// Decoded content.
    pub proof: UptimeProof,
    /// Keccak-256 of the bencoded proof (the signed hash).
    pub hash: [u8; 32],
    /// Primary key signature.
    pub sig: Signature,
    /// Ed25519 signature.
    pub ed_sig: [u8; 64],
}

/// Why a proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// Over [`MAX_PROOF_BYTES`].
    #[error("uptime proof is {0} bytes, over the {MAX_PROOF_BYTES} byte limit")]
    TooLarge(usize),
    /// Does not decode.
    #[error("malformed uptime proof: {0}")]
    Malformed(String),
    /// The primary key signature does not verify.
    #[error("uptime proof signature does not verify against the primary key")]
    BadSignature,
    /// The Ed25519 signature does not verify.
    #[error("uptime proof Ed25519 signature does not verify")]
    BadEd25519Signature,
    /// Timestamp too far from our clock.
    #[error(
        "uptime proof timestamp {timestamp} is more than {tolerance} s from our clock ({now})"
    )]
    Timestamp {
        /// In the proof.
        timestamp: u64,
        /// Ours.
        now: u64,
        /// Allowed difference.
        tolerance: u64,
    },
    /// A private, loopback or otherwise non-public address on a public network.
    #[error("uptime proof advertises non-public address {0}")]
    NonPublicIp(Ipv4Addr),
    /// Quorumnet port 0.
    #[error("uptime proof advertises quorumnet port 0")]
    ZeroPort,
    /// The key is not a registered service node.
    #[error("uptime proof from {0}, which is not a registered service node")]
    Unregistered(PublicKey),
    /// A proof from the same node was accepted too recently.
    #[error(
        "uptime proof from {node} came {since} s after the last accepted one (minimum {min} s)"
    )]
    TooSoon {
        /// The node.
        node: PublicKey,
        /// Seconds since its last accepted proof.
        since: u64,
        /// Minimum spacing.
        min: u64,
    },
}

impl ProofError {
    /// True when the message is invalid in itself: whoever relayed it did not check it, and is
    /// penalised. Time- and state-dependent refusals are not held against the relayer.
    pub fn is_peer_fault(&self) -> bool {
        matches!(
            self,
            ProofError::TooLarge(_)
                | ProofError::Malformed(_)
                | ProofError::BadSignature
                | ProofError::BadEd25519Signature
                | ProofError::ZeroPort
        )
    }
}

fn version(v: &[u16], what: &str) -> Result<[u16; 3], ProofError> {
    <[u16; 3]>::try_from(v)
        .map_err(|_| ProofError::Malformed(format!("{what} must be [major, minor, patch]")))
}

fn key(b: &[u8], what: &str) -> Result<PublicKey, ProofError> {
    <[u8; 32]>::try_from(b)
        .map(PublicKey)
        .map_err(|_| ProofError::Malformed(format!("{what} must be 32 bytes")))
}

impl UptimeProof {
    /// The bencoded proof (keys sorted; `pk` omitted when it equals the Ed25519 key).
    pub fn encode(&self) -> Vec<u8> {
        let dict = ProofDict {
            ip: self.public_ip.to_string(),
            lv: self.lokinet_version.to_vec(),
            pk: (self.pubkey != self.pubkey_ed25519).then(|| ByteBuf::from(self.pubkey.0.to_vec())),
            pke: ByteBuf::from(self.pubkey_ed25519.0.to_vec()),
            q: self.quorumnet_port,
            shp: self.storage_https_port,
            sop: self.storage_omq_port,
            sv: self.storage_version.to_vec(),
            t: self.timestamp,
            v: self.version.to_vec(),
        };
        // Serialising plain strings, integers and byte strings cannot fail.
        serde_bencode::to_bytes(&dict).unwrap_or_default()
    }

    /// Decodes a bencoded proof.
    pub fn decode(bytes: &[u8]) -> Result<UptimeProof, ProofError> {
        let d: ProofDict =
            serde_bencode::from_bytes(bytes).map_err(|e| ProofError::Malformed(e.to_string()))?;
        let pubkey_ed25519 = key(&d.pke, "pke")?;
        let pubkey = match &d.pk {
            Some(pk) => key(pk, "pk")?,
            None => pubkey_ed25519,
        };
        Ok(UptimeProof {
            pubkey,
            pubkey_ed25519,
            public_ip: d
                .ip
                .parse()
                .map_err(|_| ProofError::Malformed(format!("ip {:?} is not IPv4", d.ip)))?,
            storage_https_port: d.shp,
            storage_omq_port: d.sop,
            quorumnet_port: d.q,
            version: version(&d.v, "v")?,
            storage_version: version(&d.sv, "sv")?,
            lokinet_version: version(&d.lv, "lv")?,
            timestamp: d.t,
        })
    }

    /// Signs the proof with both keys and returns the wire message. `primary_secret` is the
    /// primary key's scalar and `ed25519_seed` the Ed25519 seed.
    pub fn sign<R: RngCore + CryptoRng>(
        &self,
        rng: &mut R,
        primary_secret: &Scalar,
        ed25519_seed: &[u8; 32],
    ) -> Vec<u8> {
        let proof = self.encode();
        let hash = keccak256(&proof);
        let sig = schnorr_sign(rng, &hash, &self.pubkey, primary_secret);
        let ed_sig = SigningKey::from_bytes(ed25519_seed).sign(&hash).to_bytes();
        serde_bencode::to_bytes(&WireDict {
            ed_sig: ByteBuf::from(ed_sig.to_vec()),
            proof: ByteBuf::from(proof),
            sig: ByteBuf::from(sig.0.to_vec()),
        })
        .unwrap_or_default()
    }
}

impl SignedProof {
    /// Decodes a wire message and verifies both signatures (§5.4's checks that need no state).
    pub fn decode_and_verify(wire: &[u8]) -> Result<SignedProof, ProofError> {
        if wire.len() > MAX_PROOF_BYTES {
            return Err(ProofError::TooLarge(wire.len()));
        }
        let w: WireDict =
            serde_bencode::from_bytes(wire).map_err(|e| ProofError::Malformed(e.to_string()))?;
        let sig = <[u8; 64]>::try_from(w.sig.as_slice())
            .map_err(|_| ProofError::Malformed("sig must be 64 bytes".into()))?;
        let ed_sig = <[u8; 64]>::try_from(w.ed_sig.as_slice())
            .map_err(|_| ProofError::Malformed("ed_sig must be 64 bytes".into()))?;
        let proof = UptimeProof::decode(&w.proof)?;
        if proof.quorumnet_port == 0 {
            return Err(ProofError::ZeroPort);
        }
        let hash = keccak256(&w.proof);
        let sig = Signature(sig);
        if !schnorr_verify(&hash, &proof.pubkey, &sig) {
            return Err(ProofError::BadSignature);
        }
        let vk = VerifyingKey::from_bytes(&proof.pubkey_ed25519.0)
            .map_err(|_| ProofError::BadEd25519Signature)?;
        vk.verify_strict(&hash, &ed25519_dalek::Signature::from_bytes(&ed_sig))
            .map_err(|_| ProofError::BadEd25519Signature)?;
        Ok(SignedProof {
            proof,
            hash,
            sig,
            ed_sig,
        })
    }

    /// The receiving rules that depend on the clock and the network (§5.4): timestamp within
    /// the tolerance, and a public address unless the network allows private ones.
    pub fn check_time_and_address(
        &self,
        now: u64,
        timings: &ServiceNodeTimings,
    ) -> Result<(), ProofError> {
        let t = self.proof.timestamp;
        if t.abs_diff(now) > timings.uptime_proof_tolerance {
            return Err(ProofError::Timestamp {
                timestamp: t,
                now,
                tolerance: timings.uptime_proof_tolerance,
            });
        }
        let ip = self.proof.public_ip;
        if !timings.allow_private_ips && !is_public(ip) {
            return Err(ProofError::NonPublicIp(ip));
        }
        Ok(())
    }
}

/// Whether an IPv4 address is publicly routable.
pub fn is_public(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_unspecified()
        || ip.is_multicast()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64)
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
        || (o[0] == 198 && (o[1] & 0xfe) == 18)
        || o[0] >= 240)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use sha2::Digest;
    use sispop_chain::crypto::public_from_secret;
    use sispop_chain::{Network, NetworkParams};

    pub(crate) fn keys(i: u8) -> ([u8; 32], Scalar, PublicKey) {
        let seed = [i; 32];
        let sk = SigningKey::from_bytes(&seed);
        let h = sha2::Sha512::digest(seed);
        let mut a = [0u8; 32];
        a.copy_from_slice(&h[..32]);
        a[0] &= 248;
        a[31] &= 63;
        a[31] |= 64;
        let x = Scalar::from_bytes_mod_order(a);
        let pk = public_from_secret(&x);
        assert_eq!(
            pk.0,
            sk.verifying_key().to_bytes(),
            "primary key equals Ed25519 key"
        );
        (seed, x, pk)
    }

    pub(crate) fn proof(pk: PublicKey, t: u64) -> UptimeProof {
        UptimeProof {
            pubkey: pk,
            pubkey_ed25519: pk,
            public_ip: Ipv4Addr::new(1, 2, 3, 4),
            storage_https_port: 22020,
            storage_omq_port: 0,
            quorumnet_port: 20000,
            version: [0, 1, 0],
            storage_version: [0, 1, 0],
            lokinet_version: [0, 0, 0],
            timestamp: t,
        }
    }

    #[test]
    fn encoding_is_upstream_bencode() {
        let (_, _, pk) = keys(1);
        let p = proof(pk, 1_700_000_000);
        let enc = p.encode();
        let mut want = b"d2:ip7:1.2.3.42:lvli0ei0ei0ee3:pke32:".to_vec();
        want.extend_from_slice(&pk.0);
        want.extend_from_slice(
            b"1:qi20000e3:shpi22020e3:sopi0e2:svli0ei1ei0ee1:ti1700000000e1:vli0ei1ei0eee",
        );
        assert_eq!(enc, want, "keys sorted, pk omitted when equal to pke");
        assert_eq!(UptimeProof::decode(&enc).expect("test value"), p);
        let mut other = p.clone();
        other.pubkey = keys(2).2;
        assert!(other.encode().windows(4).any(|w| w == b"2:pk"));
        assert_eq!(
            UptimeProof::decode(&other.encode()).expect("test value"),
            other
        );
    }

    #[test]
    fn sign_and_verify_both_keys() {
        let (seed, x, pk) = keys(3);
        let p = proof(pk, 1000);
        let wire = p.sign(&mut rand::rngs::OsRng, &x, &seed);
        let s = SignedProof::decode_and_verify(&wire).expect("test value");
        assert_eq!(s.proof, p);
        // A flipped byte anywhere breaks it.
        for i in 0..wire.len() {
            let mut bad = wire.clone();
            bad[i] ^= 1;
            assert!(SignedProof::decode_and_verify(&bad).is_err(), "byte {i}");
        }
        // Signed by another node's keys.
        let (seed2, x2, _) = keys(4);
        assert_eq!(
            SignedProof::decode_and_verify(&p.sign(&mut rand::rngs::OsRng, &x2, &seed)),
            Err(ProofError::BadSignature)
        );
        assert_eq!(
            SignedProof::decode_and_verify(&p.sign(&mut rand::rngs::OsRng, &x, &seed2)),
            Err(ProofError::BadEd25519Signature)
        );
        let mut zero = p.clone();
        zero.quorumnet_port = 0;
        assert_eq!(
            SignedProof::decode_and_verify(&zero.sign(&mut rand::rngs::OsRng, &x, &seed)),
            Err(ProofError::ZeroPort)
        );
        assert!(matches!(
            SignedProof::decode_and_verify(&vec![b'l'; 2000]),
            Err(ProofError::TooLarge(2000))
        ));
        assert!(matches!(
            SignedProof::decode_and_verify(&[b'l'; 1000]),
            Err(ProofError::Malformed(_))
        ));
    }

    #[test]
    fn time_and_address_rules() {
        let (seed, x, pk) = keys(5);
        let main = &NetworkParams::get(Network::Mainnet).sn;
        let dev = &NetworkParams::get(Network::Devnet).sn;
        let signed = |p: UptimeProof| {
            SignedProof::decode_and_verify(&p.sign(&mut rand::rngs::OsRng, &x, &seed))
                .expect("test value")
        };
        let s = signed(proof(pk, 10_000));
        assert!(s.check_time_and_address(10_000 + 300, main).is_ok());
        assert!(matches!(
            s.check_time_and_address(10_000 + 301, main),
            Err(ProofError::Timestamp { .. })
        ));
        assert!(matches!(
            s.check_time_and_address(10_000 - 301, main),
            Err(ProofError::Timestamp { .. })
        ));
        let mut local = proof(pk, 10_000);
        local.public_ip = Ipv4Addr::LOCALHOST;
        let s = signed(local);
        assert_eq!(
            s.check_time_and_address(10_000, main),
            Err(ProofError::NonPublicIp(Ipv4Addr::LOCALHOST))
        );
        assert!(s.check_time_and_address(10_000, dev).is_ok());
        for ip in [
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.5",
            "100.64.0.1",
            "0.1.2.3",
            "240.0.0.1",
        ] {
            assert!(!is_public(ip.parse().expect("test value")), "{ip}");
        }
        assert!(is_public("8.8.8.8".parse().expect("test value")));
    }
}
