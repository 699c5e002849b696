//! A fixed-size output line with just the formatting the guest needs: byte strings and
//! decimal integers. `core::fmt` would do, but costs thousands of instructions per line, and
//! ring-0 guest code runs emulated on software KVM; this costs a few per digit.

/// Capacity of a [`Line`].
pub const LINE_MAX: usize = 192;

/// One line of console output being built. Text past [`LINE_MAX`] bytes is dropped.
#[derive(Clone)]
pub struct Line {
    buf: [u8; LINE_MAX],
    len: usize,
}

impl Default for Line {
    fn default() -> Self {
        Self::new()
    }
}

impl Line {
    /// An empty line.
    pub const fn new() -> Self {
        Line {
            buf: [0; LINE_MAX],
            len: 0,
        }
    }

    /// Appends bytes.
    pub fn str(&mut self, s: &[u8]) -> &mut Self {
        let n = s.len().min(LINE_MAX - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s[..n]);
        self.len += n;
        self
    }

    /// Appends bytes, replacing anything but printable ASCII by `?` (for names that come
    /// from outside).
    pub fn printable(&mut self, s: &[u8]) -> &mut Self {
        for &b in s {
            self.str(&[if b.is_ascii_graphic() { b } else { b'?' }]);
        }
        self
    }

    /// Appends `v` in decimal.
    pub fn u64(&mut self, mut v: u64) -> &mut Self {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.str(&digits[i..])
    }

    /// Appends `v` in decimal, with a `-` when negative.
    pub fn i64(&mut self, v: i64) -> &mut Self {
        if v < 0 {
            self.str(b"-");
        }
        self.u64(v.unsigned_abs())
    }

    /// Appends `v` as `0x` and lower-case hexadecimal.
    pub fn hex(&mut self, v: u64) -> &mut Self {
        let mut digits = [0u8; 16];
        let mut i = digits.len();
        let mut v = v;
        loop {
            i -= 1;
            digits[i] = b"0123456789abcdef"[(v & 0xf) as usize];
            v >>= 4;
            if v == 0 {
                break;
            }
        }
        self.str(b"0x").str(&digits[i..])
    }

    /// The line so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_text_are_concatenated() {
        let mut line = Line::new();

        line.str(b"a=")
            .u64(0)
            .str(b" b=")
            .u64(u64::MAX)
            .str(b" c=")
            .i64(-42)
            .str(b" d=")
            .hex(0xfee0_00b0);

        assert_eq!(
            line.as_bytes(),
            b"a=0 b=18446744073709551615 c=-42 d=0xfee000b0"
        );
    }

    #[test]
    fn most_negative_number_is_printed_exactly() {
        let mut line = Line::new();

        line.i64(i64::MIN);

        assert_eq!(line.as_bytes(), b"-9223372036854775808");
    }

    #[test]
    fn overlong_text_is_truncated_at_capacity() {
        let mut line = Line::new();

        line.str(&[b'x'; LINE_MAX + 10]).str(b"more");

        assert_eq!(line.as_bytes().len(), LINE_MAX);
    }

    #[test]
    fn unprintable_bytes_are_replaced() {
        let mut line = Line::new();

        line.printable(b"rt\x1b[0m ok");

        assert_eq!(line.as_bytes(), b"rt?[0m?ok");
    }
}
