//! The channel file: its size, its header, its areas, and mapping them with the protection
//! each end is entitled to.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use vm_memory::{Bytes, FileOffset, MmapRegion, VolatileMemory};

/// Areas start on page boundaries, so each can be mapped with its own protection.
pub(crate) const PAGE: usize = 4096;
/// Bytes before the first slot of the source's area.
pub(crate) const HEADER: usize = 64;
/// Offset of the source's index (`published` or `head`) in its area.
pub(crate) const SOURCE_INDEX: usize = 16;
/// Offset of a queuing destination's `tail` in its area.
pub(crate) const TAIL: usize = 0;

const SAMPLING_MAGIC: u64 = u64::from_le_bytes(*b"BHSAMPL1");
const QUEUING_MAGIC: u64 = u64::from_le_bytes(*b"BHQUEUE1");

/// Sampling: the header of a slot (`seq`, `stamp_ns`, `len`, padding) before its data.
pub(crate) const SAMPLING_SLOT_HEADER: usize = 24;
/// Queuing: the header of a slot (`len`, padding) before its data.
pub(crate) const QUEUING_SLOT_HEADER: usize = 8;

/// The two kinds of channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    Sampling,
    Queuing,
}

/// The shape of a channel file, from the channel's kind, largest message and depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub kind: ChannelKind,
    /// Largest message in bytes (at least 1).
    pub max_message_bytes: u32,
    /// Queuing: messages the queue holds (at least 1). Sampling: ignored (two slots).
    pub depth: u32,
}

/// Why a channel file could not be created or opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create {0}")]
    Create(PathBuf, #[source] std::io::Error),
    #[error("cannot open {0} (is the partition run by `bulkhead run`?)")]
    Open(PathBuf, #[source] std::io::Error),
    #[error("{0} is not the channel this partition expects ({1})")]
    Mismatch(PathBuf, &'static str),
    #[error("cannot map {0}: {1}")]
    Map(PathBuf, String),
    #[error("a message size of 0 or a depth of 0 makes no channel")]
    Empty,
}

/// The name, in the run directory, of channel `channel`'s file.
pub fn channel_file_name(channel: &str) -> String {
    format!("chan-{channel}.shm")
}

impl Layout {
    fn magic(&self) -> u64 {
        match self.kind {
            ChannelKind::Sampling => SAMPLING_MAGIC,
            ChannelKind::Queuing => QUEUING_MAGIC,
        }
    }

    fn slots(&self) -> usize {
        match self.kind {
            ChannelKind::Sampling => 2,
            ChannelKind::Queuing => self.depth as usize,
        }
    }

    /// Bytes of one slot, header included.
    pub(crate) fn slot_len(&self) -> usize {
        let max = self.max_message_bytes as usize;
        match self.kind {
            ChannelKind::Sampling => (SAMPLING_SLOT_HEADER + max).next_multiple_of(64),
            ChannelKind::Queuing => (QUEUING_SLOT_HEADER + max).next_multiple_of(8),
        }
    }

    /// Offset of slot `i` in the source's area.
    pub(crate) fn slot(&self, i: usize) -> usize {
        HEADER + i * self.slot_len()
    }

    /// Bytes of the source's area.
    pub fn source_len(&self) -> usize {
        (HEADER + self.slots() * self.slot_len()).next_multiple_of(PAGE)
    }

    /// Bytes of the destination's area (queuing only).
    pub fn destination_len(&self) -> usize {
        match self.kind {
            ChannelKind::Sampling => 0,
            ChannelKind::Queuing => PAGE,
        }
    }

    /// Bytes of the whole file.
    pub fn file_len(&self) -> usize {
        self.source_len() + self.destination_len()
    }

    fn check(&self) -> Result<(), OpenError> {
        if self.max_message_bytes == 0 || (self.kind == ChannelKind::Queuing && self.depth == 0) {
            return Err(OpenError::Empty);
        }
        Ok(())
    }
}

/// Creates (or replaces) the file of a channel with `layout` at `path`: sized, zeroed, its
/// header written. Mode 0600. Called by the supervisor before the partitions start.
pub fn create_channel_file(path: &Path, layout: &Layout) -> Result<(), OpenError> {
    layout.check()?;
    let create = |e| OpenError::Create(path.to_path_buf(), e);
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(create(e)),
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(create)?;
    file.set_len(layout.file_len() as u64).map_err(create)?;
    let mut header = [0u8; 16];
    header[0..8].copy_from_slice(&layout.magic().to_le_bytes());
    header[8..12].copy_from_slice(&layout.max_message_bytes.to_le_bytes());
    let depth = match layout.kind {
        ChannelKind::Sampling => 1,
        ChannelKind::Queuing => layout.depth,
    };
    header[12..16].copy_from_slice(&depth.to_le_bytes());
    file.write_all_at(&header, 0).map_err(create)?;
    Ok(())
}

/// One end's view of a channel file: the source's area and, for queuing channels, the
/// destination's, each mapped writable only where `writes_source` / `writes_destination`
/// say this end owns it.
pub(crate) struct Mapped {
    pub layout: Layout,
    pub source: MmapRegion,
    pub destination: Option<MmapRegion>,
}

impl Mapped {
    /// Opens the channel file at `path`, checks that it has `layout`, maps its areas.
    pub fn open(
        path: &Path,
        layout: Layout,
        writes_source: bool,
        writes_destination: bool,
    ) -> Result<Mapped, OpenError> {
        layout.check()?;
        let file = OpenOptions::new()
            .read(true)
            .write(writes_source || writes_destination)
            .open(path)
            .map_err(|e| OpenError::Open(path.to_path_buf(), e))?;
        let mismatch = |what| OpenError::Mismatch(path.to_path_buf(), what);
        let len = file
            .metadata()
            .map_err(|e| OpenError::Open(path.to_path_buf(), e))?
            .len();
        if len != layout.file_len() as u64 {
            return Err(mismatch("size"));
        }
        let file = Arc::new(file);
        let source = map(&file, path, 0, layout.source_len(), writes_source)?;
        let read_u32 = |offset| source.as_volatile_slice().read_obj::<u32>(offset).ok();
        let magic = source.as_volatile_slice().read_obj::<u64>(0).ok();
        if magic != Some(layout.magic()) {
            return Err(mismatch("kind"));
        }
        if read_u32(8) != Some(layout.max_message_bytes) {
            return Err(mismatch("largest message"));
        }
        let depth = match layout.kind {
            ChannelKind::Sampling => 1,
            ChannelKind::Queuing => layout.depth,
        };
        if read_u32(12) != Some(depth) {
            return Err(mismatch("depth"));
        }
        let destination = match layout.destination_len() {
            0 => None,
            n => Some(map(
                &file,
                path,
                layout.source_len() as u64,
                n,
                writes_destination,
            )?),
        };
        Ok(Mapped {
            layout,
            source,
            destination,
        })
    }
}

fn map(
    file: &Arc<File>,
    path: &Path,
    offset: u64,
    len: usize,
    writable: bool,
) -> Result<MmapRegion, OpenError> {
    let prot = if writable {
        libc::PROT_READ | libc::PROT_WRITE
    } else {
        libc::PROT_READ
    };
    MmapRegion::build(
        Some(FileOffset::from_arc(Arc::clone(file), offset)),
        len,
        prot,
        libc::MAP_SHARED,
    )
    .map_err(|e| OpenError::Map(path.to_path_buf(), e.to_string()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn sampling(max: u32) -> Layout {
        Layout {
            kind: ChannelKind::Sampling,
            max_message_bytes: max,
            depth: 1,
        }
    }

    #[test]
    fn areas_are_whole_pages_and_hold_every_slot() {
        let layout = Layout {
            kind: ChannelKind::Queuing,
            max_message_bytes: 100,
            depth: 50,
        };

        assert_eq!(layout.slot_len(), 112);
        assert_eq!(layout.source_len(), 8192);
        assert!(layout.slot(49) + layout.slot_len() <= layout.source_len());
        assert_eq!(layout.file_len(), 3 * PAGE);
    }

    #[test]
    fn a_created_file_opens_with_its_own_layout_only() {
        let dir = tempdir();
        let path = dir.join(channel_file_name("t"));
        create_channel_file(&path, &sampling(64)).unwrap();

        assert!(Mapped::open(&path, sampling(64), true, false).is_ok());
        let wrong = Mapped::open(&path, sampling(128), false, false).err();
        assert!(matches!(
            wrong,
            Some(OpenError::Mismatch(_, "size" | "largest message"))
        ));
        let queuing = Layout {
            kind: ChannelKind::Queuing,
            max_message_bytes: 64,
            depth: 1,
        };
        assert!(matches!(
            Mapped::open(&path, queuing, false, false).err(),
            Some(OpenError::Mismatch(..))
        ));
    }

    #[test]
    fn a_missing_file_says_so() {
        let dir = tempdir();

        let err = Mapped::open(&dir.join("none.shm"), sampling(8), false, false).err();

        assert!(matches!(err, Some(OpenError::Open(..))));
    }

    #[test]
    fn an_empty_layout_is_refused() {
        let dir = tempdir();

        let err = create_channel_file(&dir.join("e.shm"), &sampling(0)).err();

        assert!(matches!(err, Some(OpenError::Empty)));
    }

    /// A fresh folder under the system's temporary folder, for one test.
    pub(crate) fn tempdir() -> PathBuf {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "bulkhead-ports-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
