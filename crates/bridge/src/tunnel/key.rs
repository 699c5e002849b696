//! Loading an uplink's static key from its file (`[[bridge.uplink]] key`): 64 hexadecimal
//! digits, optionally followed by one newline, or exactly 32 raw bytes, in a regular file that
//! neither group nor others may access. The same rules as validation
//! (`bulkhead_config`'s key check), applied again when the bridge starts, because the file may
//! have changed since.
//!
//! Runs once per uplink on the bridge's main thread, before the tunnel's socket is bound.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Bytes of a key.
pub const KEY_LEN: usize = 32;
/// Hexadecimal digits of a key written as text.
const HEX_LEN: usize = 2 * KEY_LEN;
/// Mode bits that give group or others any access.
const GROUP_OR_OTHERS: u32 = 0o077;

/// Why a key file was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot open key file {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read key file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("key file {} is not a regular file", path.display())]
    NotAFile { path: PathBuf },
    #[error(
        "key file {} has mode {mode:03o}: group or others may access it; chmod 600 it",
        path.display()
    )]
    Accessible { path: PathBuf, mode: u32 },
    #[error(
        "key file {} holds {len} bytes; a key is 64 hexadecimal digits (and an optional \
         newline) or 32 raw bytes",
        path.display()
    )]
    Length { path: PathBuf, len: u64 },
    #[error(
        "key file {} has byte {byte:#04x} at offset {offset}, where a hexadecimal digit \
         belongs",
        path.display()
    )]
    NotHex {
        path: PathBuf,
        offset: usize,
        byte: u8,
    },
}

/// Reads the 32-byte key in `path`.
pub fn load_key(path: &Path) -> Result<[u8; KEY_LEN], KeyError> {
    let file = open(path)?;
    let meta = file.metadata().map_err(|source| KeyError::Read {
        path: path.to_owned(),
        source,
    })?;
    if !meta.is_file() {
        return Err(KeyError::NotAFile {
            path: path.to_owned(),
        });
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & GROUP_OR_OTHERS != 0 {
        return Err(KeyError::Accessible {
            path: path.to_owned(),
            mode,
        });
    }
    // One byte more than the longest valid file, to tell "too long" from "just right".
    let mut bytes = Vec::with_capacity(HEX_LEN + 2);
    file.take((HEX_LEN + 2) as u64)
        .read_to_end(&mut bytes)
        .map_err(|source| KeyError::Read {
            path: path.to_owned(),
            source,
        })?;
    parse_key(path, &bytes, meta.len())
}

/// Opens without following into a FIFO's wait for a writer (`O_NONBLOCK`; harmless for a
/// regular file).
fn open(path: &Path) -> Result<File, KeyError> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|source| KeyError::Open {
            path: path.to_owned(),
            source,
        })
}

/// The key in a file's first bytes (`bytes`, at most 66 of the file's `file_len`).
fn parse_key(path: &Path, bytes: &[u8], file_len: u64) -> Result<[u8; KEY_LEN], KeyError> {
    let length = || KeyError::Length {
        path: path.to_owned(),
        len: file_len.max(bytes.len() as u64),
    };
    if bytes.len() == KEY_LEN {
        let mut key = [0u8; KEY_LEN];
        key.copy_from_slice(bytes);
        return Ok(key);
    }
    let text = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    if text.len() != HEX_LEN {
        return Err(length());
    }
    let mut key = [0u8; KEY_LEN];
    for (index, out) in key.iter_mut().enumerate() {
        let digit = |offset: usize| {
            let byte = text[offset];
            hex_value(byte).ok_or(KeyError::NotHex {
                path: path.to_owned(),
                offset,
                byte,
            })
        };
        *out = (digit(2 * index)? << 4) | digit(2 * index + 1)?;
    }
    Ok(key)
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191A1B1C1D1E1F";

    fn counting() -> [u8; 32] {
        std::array::from_fn(|i| i as u8)
    }

    static NEXT_DIR: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

    /// A file in a fresh directory, with the given mode.
    fn key_file(name: &str, contents: &[u8], mode: u32) -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "bulkhead-key-test-{}-{name}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("key");
        std::fs::write(&path, contents).expect("write key");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        (dir, path)
    }

    fn load(name: &str, contents: &[u8], mode: u32) -> Result<[u8; 32], KeyError> {
        let (dir, path) = key_file(name, contents, mode);
        let result = load_key(&path);
        std::fs::remove_dir_all(dir).expect("clean up");
        result
    }

    #[test]
    fn hex_key_with_a_newline_loads() {
        let key = load("hex-newline", format!("{HEX}\n").as_bytes(), 0o600);

        assert_eq!(key.expect("valid key"), counting());
    }

    #[test]
    fn hex_key_without_a_newline_loads() {
        let key = load("hex", HEX.as_bytes(), 0o400);

        assert_eq!(key.expect("valid key"), counting());
    }

    #[test]
    fn raw_key_of_32_bytes_loads() {
        let key = load("raw", &counting(), 0o600);

        assert_eq!(key.expect("valid key"), counting());
    }

    #[test]
    fn group_readable_key_is_refused_naming_the_path_and_mode() {
        let err = load("group", HEX.as_bytes(), 0o640).expect_err("refused");

        assert!(matches!(err, KeyError::Accessible { mode: 0o640, .. }));
        let message = err.to_string();
        assert!(
            message.contains("/key") && message.contains("640"),
            "{message}"
        );
    }

    #[test]
    fn world_accessible_key_is_refused() {
        let err = load("world", HEX.as_bytes(), 0o601).expect_err("refused");

        assert!(matches!(err, KeyError::Accessible { mode: 0o601, .. }));
    }

    #[test]
    fn short_key_is_refused_with_its_length() {
        let err = load("short", &HEX.as_bytes()[..40], 0o600).expect_err("refused");

        assert!(matches!(err, KeyError::Length { len: 40, .. }), "{err}");
    }

    #[test]
    fn long_key_is_refused_with_its_length() {
        let err = load("long", format!("{HEX}{HEX}").as_bytes(), 0o600).expect_err("refused");

        assert!(matches!(err, KeyError::Length { len: 128, .. }), "{err}");
    }

    #[test]
    fn hex_key_with_two_newlines_is_refused() {
        let err =
            load("two-newlines", format!("{HEX}\n\n").as_bytes(), 0o600).expect_err("refused");

        assert!(matches!(err, KeyError::Length { len: 66, .. }), "{err}");
    }

    #[test]
    fn non_hex_digit_is_refused_with_its_offset() {
        let mut text = HEX.as_bytes().to_vec();
        text[17] = b'g';

        let err = load("not-hex", &text, 0o600).expect_err("refused");

        assert!(
            matches!(
                err,
                KeyError::NotHex {
                    offset: 17,
                    byte: b'g',
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn missing_key_file_is_refused_naming_the_path() {
        let err = load_key(Path::new("/nonexistent/bulkhead/key")).expect_err("refused");

        assert!(matches!(err, KeyError::Open { .. }));
        assert!(err.to_string().contains("/nonexistent/bulkhead/key"));
    }

    #[test]
    fn directory_is_refused_as_not_a_regular_file() {
        let (dir, _path) = key_file("dir", HEX.as_bytes(), 0o600);

        let err = load_key(&dir).expect_err("refused");

        assert!(matches!(err, KeyError::NotAFile { .. }));
        std::fs::remove_dir_all(dir).expect("clean up");
    }
}
