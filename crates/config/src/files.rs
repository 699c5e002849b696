//! The files a description names: resolving their paths and checking that they can be used
//! (kernels, initrds, console logs, disk images, vsock sockets).
//!
//! Kernel formats recognised (the loaders in the VMM accept exactly these):
//! - bzImage: the Linux x86 boot protocol setup header, magic "HdrS" at offset 0x202
//!   (Documentation/arch/x86/boot.rst, field `header`).
//! - ELF: `e_ident` magic `0x7f 'E' 'L' 'F'`, `EI_CLASS` = `ELFCLASS64`, `e_machine` =
//!   `EM_X86_64`, read little-endian (System V ABI, "ELF Header").

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use crate::plan::KernelFormat;

/// Offset of the boot protocol "HdrS" magic in a bzImage.
const BZIMAGE_MAGIC_OFFSET: usize = 0x202;
const BZIMAGE_MAGIC: &[u8; 4] = b"HdrS";
/// `ELFMAG`.
const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
/// `EI_CLASS` index in `e_ident`.
const ELF_CLASS_OFFSET: usize = 4;
/// `ELFCLASS64`.
const ELF_CLASS_64: u8 = 2;
/// Offset of the two-byte `e_machine` field.
const ELF_MACHINE_OFFSET: usize = 18;
/// `EM_X86_64`.
const ELF_MACHINE_X86_64: u16 = 62;
/// Bytes read from a kernel to tell its format.
const KERNEL_HEADER_LEN: usize = BZIMAGE_MAGIC_OFFSET + BZIMAGE_MAGIC.len();

/// Why a file named by the description cannot be used. The `Display` text is the problem
/// message, so it names the resolved path and includes the OS error.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FileError {
    #[error("cannot read {path:?}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path:?} is not a bzImage or x86_64 ELF ({detail})")]
    NotAKernel { path: PathBuf, detail: String },
    #[error("cannot use folder {folder:?} for {path:?}: {source}")]
    Folder {
        path: PathBuf,
        folder: PathBuf,
        source: io::Error,
    },
    #[error("{folder:?}, the folder for {path:?}, is not a folder")]
    NotAFolder { path: PathBuf, folder: PathBuf },
    #[error("{path:?} is a folder, not a file")]
    IsAFolder { path: PathBuf },
    #[error("{path:?} is not a regular file (it is {what})")]
    NotARegularFile { path: PathBuf, what: &'static str },
    #[error(
        "cannot open {path:?} for writing: {source}; set read_only = true to use it read-only"
    )]
    NotWritable { path: PathBuf, source: io::Error },
}

/// `path` made absolute: a leading `~/` is the user's home folder (`$HOME`), other relative
/// paths are taken from `base` (the description's folder).
pub(crate) fn resolve(base: &Path, path: &str) -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let joined = match (path.strip_prefix("~/"), home) {
        (Some(rest), Some(home)) => home.join(rest),
        _ => base.join(path),
    };
    std::path::absolute(&joined).unwrap_or(joined)
}

/// The folder relative paths in the description at `description` start from.
pub(crate) fn base_folder(description: &Path) -> PathBuf {
    match description.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Opens `path` and tells its kernel format from its first bytes.
pub(crate) fn kernel_format(path: &Path) -> Result<KernelFormat, FileError> {
    let read_error = |source| FileError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut header = Vec::with_capacity(KERNEL_HEADER_LEN);
    File::open(path)
        .and_then(|file| file.take(KERNEL_HEADER_LEN as u64).read_to_end(&mut header))
        .map_err(read_error)?;
    detect_kernel_format(&header).map_err(|detail| FileError::NotAKernel {
        path: path.to_path_buf(),
        detail,
    })
}

/// Checks that `path` can be opened and read.
pub(crate) fn readable(path: &Path) -> Result<(), FileError> {
    File::open(path)
        .and_then(|mut file| file.read(&mut [0u8; 1]))
        .map(|_| ())
        .map_err(|source| FileError::Read {
            path: path.to_path_buf(),
            source,
        })
}

/// Checks that a raw disk image at `path` can be used: it is a regular file (never opened
/// otherwise, so a FIFO cannot block validation), it can be read and, if `writable`, opened
/// for writing (which changes nothing in it). Returns its canonical path, which tells whether
/// two devices share an image.
pub(crate) fn disk_image(path: &Path, writable: bool) -> Result<PathBuf, FileError> {
    let read_error = |source| FileError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file_type = std::fs::metadata(path).map_err(read_error)?.file_type();
    if !file_type.is_file() {
        return Err(FileError::NotARegularFile {
            path: path.to_path_buf(),
            what: describe_file_type(file_type),
        });
    }
    readable(path)?;
    if writable {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|source| FileError::NotWritable {
                path: path.to_path_buf(),
                source,
            })?;
    }
    std::fs::canonicalize(path).map_err(read_error)
}

/// Checks that a Unix socket can be at `path` (see [`creatable`]) and returns the path with
/// its folder canonical, which tells whether two ports name the same socket even though the
/// socket itself need not exist yet.
pub(crate) fn socket_path(path: &Path) -> Result<PathBuf, FileError> {
    creatable(path)?;
    let canonical = match (path.parent(), path.file_name()) {
        (Some(folder), Some(name)) => std::fs::canonicalize(folder).map(|f| f.join(name)),
        _ => std::fs::canonicalize(path),
    };
    Ok(canonical.unwrap_or_else(|_| path.to_path_buf()))
}

/// What kind of file other than a regular one `file_type` is, with its article.
fn describe_file_type(file_type: std::fs::FileType) -> &'static str {
    if file_type.is_dir() {
        "a folder"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "some other kind of file"
    }
}

/// Checks that a file (a console log, a Unix socket) can be created at `path`: its folder
/// exists, and `path` is not itself a folder.
pub(crate) fn creatable(path: &Path) -> Result<(), FileError> {
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("/"),
    };
    let metadata = std::fs::metadata(&folder).map_err(|source| FileError::Folder {
        path: path.to_path_buf(),
        folder: folder.clone(),
        source,
    })?;
    if !metadata.is_dir() {
        return Err(FileError::NotAFolder {
            path: path.to_path_buf(),
            folder,
        });
    }
    if path.is_dir() {
        return Err(FileError::IsAFolder {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Tells a kernel's format from its first [`KERNEL_HEADER_LEN`] bytes; on failure, says why.
fn detect_kernel_format(header: &[u8]) -> Result<KernelFormat, String> {
    if header.starts_with(ELF_MAGIC) {
        let class = header.get(ELF_CLASS_OFFSET).copied();
        let machine = header
            .get(ELF_MACHINE_OFFSET..ELF_MACHINE_OFFSET + 2)
            .map(|bytes| u16::from_le_bytes([bytes[0], bytes[1]]));
        return match (class, machine) {
            (Some(ELF_CLASS_64), Some(ELF_MACHINE_X86_64)) => Ok(KernelFormat::Elf64),
            (None, _) | (_, None) => Err("ELF header is truncated".to_owned()),
            (Some(class), _) if class != ELF_CLASS_64 => {
                Err(format!("ELF class {class}, not 64-bit ({ELF_CLASS_64})"))
            }
            (_, Some(machine)) => Err(format!(
                "ELF machine {machine}, not x86_64 ({ELF_MACHINE_X86_64})"
            )),
        };
    }
    if header.get(BZIMAGE_MAGIC_OFFSET..KERNEL_HEADER_LEN) == Some(BZIMAGE_MAGIC.as_slice()) {
        return Ok(KernelFormat::BzImage);
    }
    Err("no \"HdrS\" at offset 0x202 and no ELF magic".to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn tilde_slash_resolves_against_home() {
        let home = std::path::PathBuf::from(std::env::var_os("HOME").unwrap());

        let resolved = super::resolve(std::path::Path::new("/etc"), "~/images/vmlinuz");

        assert_eq!(resolved, home.join("images/vmlinuz"));
    }

    use super::*;

    fn elf_header(class: u8, machine: u16) -> Vec<u8> {
        let mut header = vec![0u8; 64];
        header[..4].copy_from_slice(ELF_MAGIC);
        header[ELF_CLASS_OFFSET] = class;
        header[ELF_MACHINE_OFFSET..ELF_MACHINE_OFFSET + 2].copy_from_slice(&machine.to_le_bytes());
        header
    }

    #[test]
    fn hdrs_at_0x202_is_a_bzimage() {
        let mut header = vec![0u8; KERNEL_HEADER_LEN];
        header[0x202..0x206].copy_from_slice(b"HdrS");

        let format = detect_kernel_format(&header);

        assert_eq!(format, Ok(KernelFormat::BzImage));
    }

    #[test]
    fn elf64_x86_64_header_is_an_elf64_kernel() {
        let header = elf_header(2, 62);

        let format = detect_kernel_format(&header);

        assert_eq!(format, Ok(KernelFormat::Elf64));
    }

    #[test]
    fn elf32_header_is_refused_as_not_64_bit() {
        let header = elf_header(1, 62);

        let format = detect_kernel_format(&header);

        assert_eq!(format, Err("ELF class 1, not 64-bit (2)".to_owned()));
    }

    #[test]
    fn aarch64_elf_header_is_refused_naming_the_machine() {
        let header = elf_header(2, 183);

        let format = detect_kernel_format(&header);

        assert_eq!(format, Err("ELF machine 183, not x86_64 (62)".to_owned()));
    }

    #[test]
    fn truncated_elf_header_is_refused() {
        let header = b"\x7fELF\x02".to_vec();

        let format = detect_kernel_format(&header);

        assert_eq!(format, Err("ELF header is truncated".to_owned()));
    }

    #[test]
    fn short_file_without_magic_is_refused() {
        let header = b"#!/bin/sh\n".to_vec();

        let format = detect_kernel_format(&header);

        assert!(format.is_err());
    }

    #[test]
    fn relative_path_resolves_against_base_folder() {
        let resolved = resolve(Path::new("/etc/bulkhead"), "guests/k.elf");

        assert_eq!(resolved, PathBuf::from("/etc/bulkhead/guests/k.elf"));
    }

    #[test]
    fn absolute_path_ignores_base_folder() {
        let resolved = resolve(Path::new("/etc/bulkhead"), "/boot/vmlinuz");

        assert_eq!(resolved, PathBuf::from("/boot/vmlinuz"));
    }

    #[test]
    fn character_device_is_not_a_disk_image() {
        let result = disk_image(Path::new("/dev/null"), false);

        assert_eq!(
            result.unwrap_err().to_string(),
            "\"/dev/null\" is not a regular file (it is a character device)"
        );
    }

    #[test]
    fn socket_path_has_its_folder_canonical() {
        let folder = std::fs::canonicalize(std::env::temp_dir()).unwrap();
        let spelled = folder
            .join("..")
            .join(folder.file_name().unwrap())
            .join("a.sock");

        let canonical = socket_path(&spelled).unwrap();

        assert_eq!(canonical, folder.join("a.sock"));
    }

    #[test]
    fn socket_path_that_is_a_folder_is_refused() {
        let folder = std::env::temp_dir();

        let result = socket_path(&folder);

        assert!(matches!(result, Err(FileError::IsAFolder { .. })));
    }

    #[test]
    fn description_without_folder_has_current_folder_as_base() {
        let base = base_folder(Path::new("demo.toml"));

        assert_eq!(base, PathBuf::from("."));
    }
}
