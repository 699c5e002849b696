//! The messages the two ends of a uart link exchange, one per datagram, little-endian.
//!
//! Every message names its sender's *session* (`from`, a non-zero number each partition
//! process picks when it starts): a different `from` than before means the peer restarted.
//! Credits and data also name the session they are meant for (`to`), so that what was meant
//! for an earlier incarnation of the receiver is recognised and discarded.
//!
//! ```text
//! HELLO   1  from:u64                                 "I started; send me your credit"
//! CREDIT  2  from:u64 to:u64 limit:u64                "you may have sent me up to `limit` bytes"
//! DATA    3  from:u64 to:u64 seq:u64 bytes[1..=4096]  bytes `seq..seq+len` of the stream
//! ```
//!
//! `limit` and `seq` count the bytes of the stream from `from` to `to` since the receiver
//! first heard of the sender's session. Datagrams between two connected Unix sockets arrive
//! whole and in order, so nothing here reorders or retransmits.

/// Most bytes of data in one message.
pub const MAX_DATA_BYTES: usize = 4096;
/// Length of a DATA message's header (kind, from, to, seq).
pub const DATA_HEADER_BYTES: usize = 25;
/// The longest message.
pub const MAX_MESSAGE_BYTES: usize = DATA_HEADER_BYTES + MAX_DATA_BYTES;

const HELLO: u8 = 1;
const CREDIT: u8 = 2;
const DATA: u8 = 3;
const HELLO_BYTES: usize = 9;
const CREDIT_BYTES: usize = 25;

/// One message of the link protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// The sender (re)started and asks for the receiver's credit.
    Hello { from: u64 },
    /// The receiver of data grants credit: the sender may have sent up to `limit` bytes.
    Credit { from: u64, to: u64, limit: u64 },
    /// Bytes `seq..seq + bytes.len()` of the stream.
    Data {
        from: u64,
        to: u64,
        seq: u64,
        bytes: &'a [u8],
    },
}

/// Why a datagram is not a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("empty datagram")]
    Empty,
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
    #[error("message of kind {kind} is {len} bytes long")]
    Length { kind: u8, len: usize },
    #[error("session 0 is not a session")]
    NoSession,
}

impl<'a> Message<'a> {
    /// The sender's session.
    pub fn from(&self) -> u64 {
        match *self {
            Message::Hello { from } | Message::Credit { from, .. } | Message::Data { from, .. } => {
                from
            }
        }
    }

    /// Parses one datagram. Never panics, whatever the bytes.
    pub fn decode(datagram: &'a [u8]) -> Result<Message<'a>, WireError> {
        let (&kind, _) = datagram.split_first().ok_or(WireError::Empty)?;
        let len = datagram.len();
        let word = |i: usize| {
            let start = 1 + 8 * i;
            datagram
                .get(start..start + 8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map_or(0, u64::from_le_bytes)
        };
        let message = match kind {
            HELLO if len == HELLO_BYTES => Message::Hello { from: word(0) },
            CREDIT if len == CREDIT_BYTES => Message::Credit {
                from: word(0),
                to: word(1),
                limit: word(2),
            },
            DATA if (DATA_HEADER_BYTES + 1..=MAX_MESSAGE_BYTES).contains(&len) => Message::Data {
                from: word(0),
                to: word(1),
                seq: word(2),
                bytes: &datagram[DATA_HEADER_BYTES..],
            },
            HELLO | CREDIT | DATA => return Err(WireError::Length { kind, len }),
            other => return Err(WireError::UnknownKind(other)),
        };
        if message.from() == 0 {
            return Err(WireError::NoSession);
        }
        Ok(message)
    }

    /// Appends the message's bytes to `out` (DATA: at most [`MAX_DATA_BYTES`] of them are
    /// written; the caller never gives more).
    pub fn encode(&self, out: &mut Vec<u8>) {
        match *self {
            Message::Hello { from } => {
                out.push(HELLO);
                out.extend_from_slice(&from.to_le_bytes());
            }
            Message::Credit { from, to, limit } => {
                out.push(CREDIT);
                for word in [from, to, limit] {
                    out.extend_from_slice(&word.to_le_bytes());
                }
            }
            Message::Data {
                from,
                to,
                seq,
                bytes,
            } => {
                out.push(DATA);
                for word in [from, to, seq] {
                    out.extend_from_slice(&word.to_le_bytes());
                }
                out.extend_from_slice(&bytes[..bytes.len().min(MAX_DATA_BYTES)]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(message: Message<'_>) -> Vec<u8> {
        let mut bytes = Vec::new();
        message.encode(&mut bytes);
        assert_eq!(Message::decode(&bytes), Ok(message));
        bytes
    }

    #[test]
    fn every_kind_of_message_survives_encoding() {
        let hello = round_trip(Message::Hello { from: 7 });
        let credit = round_trip(Message::Credit {
            from: 7,
            to: 9,
            limit: 4096,
        });
        let data = round_trip(Message::Data {
            from: 7,
            to: 9,
            seq: 100,
            bytes: b"hello",
        });

        assert_eq!(
            (hello.len(), credit.len(), data.len()),
            (9, 25, DATA_HEADER_BYTES + 5)
        );
    }

    #[test]
    fn truncated_and_overlong_messages_are_refused() {
        let mut credit = Vec::new();
        Message::Credit {
            from: 1,
            to: 2,
            limit: 3,
        }
        .encode(&mut credit);

        assert_eq!(
            Message::decode(&credit[..24]),
            Err(WireError::Length { kind: 2, len: 24 })
        );
        assert_eq!(
            Message::decode(&vec![3u8; MAX_MESSAGE_BYTES + 1]),
            Err(WireError::Length {
                kind: 3,
                len: MAX_MESSAGE_BYTES + 1
            })
        );
        assert_eq!(
            Message::decode(&[3u8; DATA_HEADER_BYTES]),
            Err(WireError::Length {
                kind: 3,
                len: DATA_HEADER_BYTES
            })
        );
    }

    #[test]
    fn empty_unknown_and_sessionless_datagrams_are_refused() {
        assert_eq!(Message::decode(&[]), Err(WireError::Empty));
        assert_eq!(Message::decode(&[9, 0]), Err(WireError::UnknownKind(9)));
        assert_eq!(
            Message::decode(&[1, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(WireError::NoSession)
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder() {
        let mut seed = 0x1234_5678_u32;
        for len in 0..200 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (seed >> 16) as u8 % 4
                })
                .collect();

            let _ = Message::decode(&bytes);
        }
    }
}
