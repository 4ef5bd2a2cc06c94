//! The 25-word Cryptonote recovery phrase (Electrum-style, English word list): 24 words
//! encoding the 32-byte spend secret in 3-word groups of 4 bytes, plus a checksum word chosen by
//! CRC-32 over the words' 3-letter prefixes.
//!
//! The word list (`english.txt`) is the standard Monero/Electrum English list of 1626 words,
//! originally created by dabura667 and released under the MIT License; wallets need the exact
//! list to read each other's phrases.

const WORDS_TEXT: &str = include_str!("english.txt");
const N: u64 = 1626;
const PREFIX: usize = 3;

fn words() -> Vec<&'static str> {
    WORDS_TEXT.lines().collect()
}

/// A phrase that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MnemonicError {
    /// Not 24 or 25 words.
    #[error("a recovery phrase has 25 words (or 24 without the checksum word); got {0}")]
    Length(usize),
    /// A word not in the list.
    #[error("'{0}' is not a word of the English list")]
    UnknownWord(String),
    /// Checksum word does not match.
    #[error("the checksum word does not match; check the phrase for typos")]
    Checksum,
    /// A 3-word group that does not encode 4 bytes.
    #[error("the phrase does not encode a valid key")]
    Invalid,
}

fn checksum_index(ws: &[&str]) -> usize {
    let prefixes: String = ws
        .iter()
        .map(|w| w.chars().take(PREFIX).collect::<String>())
        .collect();
    (crc32fast::hash(prefixes.as_bytes()) % ws.len() as u32) as usize
}

/// Encodes 32 bytes as 25 words.
pub fn encode(key: &[u8; 32]) -> String {
    let list = words();
    let mut out: Vec<&str> = Vec::with_capacity(25);
    for chunk in key.chunks_exact(4) {
        let x = u64::from(u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]));
        let w1 = x % N;
        let w2 = (x / N + w1) % N;
        let w3 = (x / N / N + w2) % N;
        out.extend([list[w1 as usize], list[w2 as usize], list[w3 as usize]]);
    }
    out.push(out[checksum_index(&out)]);
    out.join(" ")
}

/// Decodes a 25-word phrase (or 24 words without checksum) to 32 bytes. Words may be given by
/// their unique 3-letter prefix; case and extra spaces are ignored.
pub fn decode(phrase: &str) -> Result<[u8; 32], MnemonicError> {
    let list = words();
    let given: Vec<String> = phrase.split_whitespace().map(str::to_lowercase).collect();
    if given.len() != 25 && given.len() != 24 {
        return Err(MnemonicError::Length(given.len()));
    }
    let mut idx = Vec::with_capacity(25);
    let mut canon: Vec<&str> = Vec::with_capacity(25);
    for w in &given {
        let pos = list
            .iter()
            .position(|l| l == w)
            .or_else(|| {
                (w.chars().count() >= PREFIX)
                    .then(|| {
                        list.iter()
                            .position(|l| l.chars().take(PREFIX).eq(w.chars().take(PREFIX)))
                    })
                    .flatten()
            })
            .ok_or_else(|| MnemonicError::UnknownWord(w.clone()))?;
        idx.push(pos as u64);
        canon.push(list[pos]);
    }
    if given.len() == 25 {
        let want = canon[checksum_index(&canon[..24])];
        if want.chars().take(PREFIX).ne(canon[24].chars().take(PREFIX)) {
            return Err(MnemonicError::Checksum);
        }
    }
    let mut key = [0u8; 32];
    for (i, g) in idx[..24].chunks_exact(3).enumerate() {
        let (w1, w2, w3) = (g[0], g[1], g[2]);
        let x = w1 + N * ((N - w1 + w2) % N) + N * N * ((N - w2 + w3) % N);
        if x % N != w1 || x > u64::from(u32::MAX) {
            return Err(MnemonicError::Invalid);
        }
        key[4 * i..4 * i + 4].copy_from_slice(&(x as u32).to_le_bytes());
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(h: &str) -> [u8; 32] {
        let mut k = [0u8; 32];
        hex::decode_to_slice(h, &mut k).expect("hex");
        k
    }

    // Produced by an independent implementation (the `monero` Python package).
    const VECTORS: [(&str, &str); 2] = [
        (
            "1b4ea5c1c5ec7ac66c2d8fe1d9a3d4d96f1b2a3c4d5e6f708192a3b4c5d6e70a",
            "different addicted sewage lyrics acoustic skulls enhanced nostril kettle dubbed looking greater oars hijack online unrest hills sugar custom joyous clue delayed huddle jargon clue",
        ),
        (
            "0f6d3f7e5f2a0d6d3f4e8e1d8b4d5b7a2c9e0f1a2b3c4d5e6f708192a3b4c507",
            "tissue yanks lava names needed yields factual syringe visited atrium lukewarm yawning testing duke gambit mailed vastness fight gnaw afraid oaks cunning lifestyle masterful oaks",
        ),
    ];

    #[test]
    fn vectors() {
        assert_eq!(words().len(), 1626);
        for (h, phrase) in VECTORS {
            assert_eq!(encode(&key(h)), phrase);
            assert_eq!(decode(phrase), Ok(key(h)));
        }
    }

    #[test]
    fn prefixes_case_and_errors() {
        let (h, phrase) = VECTORS[0];
        let short: Vec<String> = phrase.split(' ').map(|w| w[..3].to_uppercase()).collect();
        assert_eq!(decode(&short.join("  ")), Ok(key(h)));
        let no_checksum: Vec<&str> = phrase.split(' ').take(24).collect();
        assert_eq!(decode(&no_checksum.join(" ")), Ok(key(h)));
        let mut wrong_check: Vec<&str> = phrase.split(' ').collect();
        wrong_check[24] = "abbey";
        assert_eq!(decode(&wrong_check.join(" ")), Err(MnemonicError::Checksum));
        assert_eq!(decode("abbey abbey"), Err(MnemonicError::Length(2)));
        let bad = phrase.replacen("different", "zzzzz", 1);
        assert_eq!(
            decode(&bad),
            Err(MnemonicError::UnknownWord("zzzzz".into()))
        );
    }
}
