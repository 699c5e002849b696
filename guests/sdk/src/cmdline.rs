//! The command-line convention of bulkhead's bare-metal images: words separated by ASCII
//! white space, each option a `key=value` word. Words without `=` are skipped (a monitor or a
//! boot loader may add its own); what the keys mean, and what an unknown key does, is each
//! image's business.

/// One `key=value` word of a command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Word<'a> {
    /// The whole word, for messages.
    pub word: &'a [u8],
    /// What comes before the first `=`.
    pub key: &'a [u8],
    /// What comes after it (may be empty, may contain more `=`).
    pub value: &'a [u8],
}

/// The `key=value` words of `cmdline` (without its terminating NUL), in order.
pub fn options(cmdline: &[u8]) -> impl Iterator<Item = Word<'_>> {
    cmdline
        .split(|b| b.is_ascii_whitespace())
        .filter_map(|word| {
            let eq = word.iter().position(|&b| b == b'=')?;
            Some(Word {
                word,
                key: &word[..eq],
                value: &word[eq + 1..],
            })
        })
}

/// Parses an unsigned decimal number; `None` if empty, not all digits, or over `u64::MAX`.
pub fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &d| {
        if d.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        } else {
            None
        }
    })
}

/// Stores `value` parsed as decimal into `field` if it lies in `min..=max`; returns whether
/// it did (the field is left alone otherwise).
pub fn set_decimal(field: &mut u64, value: &[u8], min: u64, max: u64) -> bool {
    match parse_decimal(value) {
        Some(v) if (min..=max).contains(&v) => {
            *field = v;
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_without_equals_are_skipped_and_the_rest_split_at_the_first_equals() {
        let keys: Vec<(&[u8], &[u8])> = options(b" quiet a=1\tb=x=y\nc= ")
            .map(|o| (o.key, o.value))
            .collect();

        assert_eq!(
            keys,
            [
                (&b"a"[..], &b"1"[..]),
                (&b"b"[..], &b"x=y"[..]),
                (&b"c"[..], &b""[..])
            ]
        );
    }

    #[test]
    fn decimal_parser_rejects_signs_and_empty_input() {
        assert_eq!(
            [
                parse_decimal(b""),
                parse_decimal(b"-1"),
                parse_decimal(b"+1"),
                parse_decimal(b"007"),
                parse_decimal(b"18446744073709551616"),
            ],
            [None, None, None, Some(7), None]
        );
    }

    #[test]
    fn out_of_range_value_leaves_the_field_alone() {
        let mut field = 5;

        let results = [
            set_decimal(&mut field, b"0", 1, 10),
            set_decimal(&mut field, b"11", 1, 10),
        ];

        assert_eq!((results, field), ([false, false], 5));
    }
}
