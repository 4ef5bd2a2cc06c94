//! A bounds-checked cursor over untrusted bytes. Every read fails cleanly at the end of the
//! input; no length read off the wire is trusted for an allocation.

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Input ended before the field did.
    #[error("truncated: {0} needs more bytes than remain")]
    Truncated(&'static str),
    /// A varint was not canonical or overflowed 64 bits.
    #[error("bad varint in {0}")]
    BadVarint(&'static str),
    /// A count claims more elements than the remaining bytes can hold.
    #[error("{field}: count {count} exceeds what the remaining {remaining} bytes can hold")]
    Count {
        /// Which field.
        field: &'static str,
        /// The claimed count.
        count: u64,
        /// Bytes left.
        remaining: usize,
    },
    /// Bytes left over after the object.
    #[error("{0} trailing bytes after the object")]
    Trailing(usize),
    /// A value outside its allowed set.
    #[error("invalid {0}")]
    Invalid(String),
}

/// Cursor over a byte slice.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts at the beginning of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }
    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    /// Bytes read so far.
    pub fn position(&self) -> usize {
        self.pos
    }
    /// The unread tail.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }
    /// Advances by `n` bytes (which must be available).
    pub fn advance(&mut self, n: usize, what: &'static str) -> Result<(), DecodeError> {
        if n > self.remaining() {
            return Err(DecodeError::Truncated(what));
        }
        self.pos += n;
        Ok(())
    }
    /// One byte.
    pub fn byte(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        let b = *self.buf.get(self.pos).ok_or(DecodeError::Truncated(what))?;
        self.pos += 1;
        Ok(b)
    }
    /// `n` bytes.
    pub fn slice(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(DecodeError::Truncated(what));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    /// A fixed array.
    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.slice(N, what)?);
        Ok(out)
    }
    /// Little-endian u32.
    pub fn u32_le(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    /// Little-endian u16.
    pub fn u16_le(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    /// Little-endian u64.
    pub fn u64_le(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    /// A canonical varint (no trailing zero groups, no overflow).
    pub fn varint(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        let mut shift = 0u32;
        loop {
            let b = self.byte(what)?;
            if shift > 0 && b == 0 {
                return Err(DecodeError::BadVarint(what));
            }
            let low = u64::from(b & 0x7f);
            if shift == 63 && low > 1 {
                return Err(DecodeError::BadVarint(what));
            }
            value |= low << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
            shift += 7;
            if shift > 63 {
                return Err(DecodeError::BadVarint(what));
            }
        }
    }
    /// A varint count, checked against the bytes left given a minimum element size.
    pub fn count(&mut self, what: &'static str, min_elem: usize) -> Result<usize, DecodeError> {
        let n = self.varint(what)?;
        let remaining = self.remaining();
        let fits = usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_mul(min_elem.max(1)))
            .is_some_and(|b| b <= remaining);
        if !fits {
            return Err(DecodeError::Count {
                field: what,
                count: n,
                remaining,
            });
        }
        Ok(n as usize)
    }
    /// Fails if any byte is left.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError::Trailing(n)),
        }
    }
}

/// Appends a varint.
pub fn put_varint(out: &mut Vec<u8>, n: u64) {
    out.extend(crate::crypto::varint_bytes(n));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints() {
        let mut v = Vec::new();
        put_varint(&mut v, 300);
        assert_eq!(v, [0xac, 0x02]);
        assert_eq!(Reader::new(&v).varint("x"), Ok(300));
        assert!(
            Reader::new(&[0x80, 0x00]).varint("x").is_err(),
            "non-canonical"
        );
        assert!(Reader::new(&[0x80]).varint("x").is_err(), "truncated");
        let mut max = Vec::new();
        put_varint(&mut max, u64::MAX);
        assert_eq!(Reader::new(&max).varint("x"), Ok(u64::MAX));
        assert!(Reader::new(&[0xff; 10]).varint("x").is_err(), "overflow");
        assert!(
            Reader::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02])
                .varint("x")
                .is_err()
        );
    }

    #[test]
    fn counts_are_bounded_by_input() {
        let mut v = Vec::new();
        put_varint(&mut v, 1 << 40);
        assert!(matches!(
            Reader::new(&v).count("n", 32),
            Err(DecodeError::Count { .. })
        ));
    }
}
