//! Which swarm stores a user's messages: the pubkey's position on the ring and the nearest
//! swarm id (reference §3.7).

use crate::SwarmId;

/// A user pubkey that cannot be placed on the ring.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PubkeyError {
    /// Neither a 32-byte key nor a 33-byte prefixed Session id.
    #[error("pubkey must be 32 bytes, or 33 bytes with a one-byte prefix; got {0} bytes")]
    Length(usize),
}

/// The ring position of a user pubkey: the four big-endian u64 words of the 32-byte key XORed
/// together. A 33-byte Session id (`05…`) is placed by its last 32 bytes.
pub fn swarm_space_position(pubkey: &[u8]) -> Result<u64, PubkeyError> {
    let key: &[u8] = match pubkey.len() {
        32 => pubkey,
        33 => &pubkey[1..],
        n => return Err(PubkeyError::Length(n)),
    };
    Ok(key
        .chunks_exact(8)
        .map(|c| {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            u64::from_be_bytes(w)
        })
        .fold(0, |acc, w| acc ^ w))
}

/// The swarm nearest to `position` on the ring, given swarm ids in **ascending** order.
/// Distances wrap around; a tie goes to the lower ("left") neighbour, which across the wrap is
/// the highest id. `None` when there are no swarms.
pub fn nearest_swarm(sorted_ids: &[SwarmId], position: u64) -> Option<SwarmId> {
    match sorted_ids {
        [] => None,
        [only] => Some(*only),
        ids => {
            let right_idx = ids.partition_point(|&id| id < position);
            let right_idx = if right_idx == ids.len() { 0 } else { right_idx };
            let left_idx = if right_idx == 0 {
                ids.len() - 1
            } else {
                right_idx - 1
            };
            let right = ids[right_idx];
            let left = ids[left_idx];
            let d_right = right.wrapping_sub(position);
            let d_left = position.wrapping_sub(left);
            Some(if d_right < d_left { right } else { left })
        }
    }
}

/// The swarm that stores messages for `pubkey`.
pub fn swarm_for_pubkey(
    sorted_ids: &[SwarmId],
    pubkey: &[u8],
) -> Result<Option<SwarmId>, PubkeyError> {
    Ok(nearest_swarm(sorted_ids, swarm_space_position(pubkey)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex32(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    #[test]
    fn space_vectors() {
        let cases: [(&str, u64); 5] = [
            (
                "3506f4a71324b7dd114eddbf4e311f39dde243e1f2cb97c40db1961f70ebaae8",
                17_589_930_838_143_112_648,
            ),
            (
                "cf27da303a50ac8c4b2d43d27259505c9bcd73fc21cf2a57902c3d050730b604",
                10_370_619_079_776_428_163,
            ),
            (
                "d3511706b8b34f6e8411bf07bd22ba6b2435ca56846fbccf6eb1e166a6cd15cc",
                2_144_983_569_669_512_198,
            ),
            (
                "0f06693428fca9102a451e3f28d9cc743d8ea60a89ab6aa69eb119470c11cbd3",
                9_690_840_703_409_570_833,
            ),
            (
                "ffba630924aa1224bb930dde21c0d11bf004608f2812217f8ac812d6c7e3ad48",
                4_532_060_000_165_252_872,
            ),
        ];
        for (hex, want) in cases {
            assert_eq!(swarm_space_position(&hex32(hex)), Ok(want), "{hex}");
            let mut session_id = vec![0x05];
            session_id.extend(hex32(hex));
            assert_eq!(swarm_space_position(&session_id), Ok(want));
        }
        let e = hex32("eeeeeeeeeeeeeeee777777777777777711111111111111118888888888888888");
        assert_eq!(swarm_space_position(&e), Ok(0));
        assert_eq!(
            swarm_space_position(&hex32(&"0123456789abcdef".repeat(4))),
            Ok(0)
        );
        let mut k = vec![0xff; 31];
        k.push(0xfe);
        assert_eq!(swarm_space_position(&k), Ok(1));
        let mut k = vec![0xff; 24];
        k.extend(0x7fff_ffff_ffff_ffffu64.to_be_bytes());
        assert_eq!(swarm_space_position(&k), Ok(1 << 63));
        let mut k = vec![0; 24];
        k.extend(u64::MAX.to_be_bytes());
        assert_eq!(swarm_space_position(&k), Ok(u64::MAX));
        let mut k = vec![0; 24];
        k.extend(0x0123_4567_89ab_cdefu64.to_be_bytes());
        assert_eq!(swarm_space_position(&k), Ok(0x0123_4567_89ab_cdef));
    }

    #[test]
    fn bad_lengths_are_rejected() {
        assert_eq!(swarm_space_position(&[0; 31]), Err(PubkeyError::Length(31)));
        assert_eq!(swarm_space_position(&[0; 34]), Err(PubkeyError::Length(34)));
        assert_eq!(swarm_space_position(&[]), Err(PubkeyError::Length(0)));
    }

    #[test]
    fn nearest_swarm_vectors() {
        let mut ids = vec![100, 200, 300, 399, 498, 596, 694];
        let cases: [(u64, u64); 27] = [
            (0, 100),
            (1, 100),
            (100, 100),
            (200, 200),
            (498, 498),
            (0x8000_0000_0000_0000, 694),
            (0xa000_0000_0000_0000, 100),
            (u64::MAX, 100),
            (u64::MAX - 1, 100),
            (149, 100),
            (150, 100),
            (151, 200),
            (249, 200),
            (250, 200),
            (251, 300),
            (349, 300),
            (350, 399),
            (448, 399),
            (449, 498),
            (546, 498),
            (547, 498),
            (548, 596),
            (645, 596),
            (646, 694),
            (0x8000_0000_0000_018c, 694),
            (0x8000_0000_0000_018d, 694),
            (0x8000_0000_0000_018e, 100),
        ];
        for (p, want) in cases {
            assert_eq!(nearest_swarm(&ids, p), Some(want), "position {p:#x}");
        }
        ids.push(u64::MAX - 19);
        for (p, want) in [(0x27, u64::MAX - 19), (0x28, u64::MAX - 19), (0x29, 100)] {
            assert_eq!(nearest_swarm(&ids, p), Some(want), "position {p:#x}");
        }
        ids.insert(0, 0);
        assert_eq!(nearest_swarm(&ids, u64::MAX), Some(0));
        assert_eq!(nearest_swarm(&ids, u64::MAX - 1), Some(0));
        assert_eq!(nearest_swarm(&[], 5), None);
        assert_eq!(nearest_swarm(&[42], 5), Some(42));
    }
}
