//! The partition's console sink: guest output from every source (COM1, the paravirtual
//! console) and every vCPU, serialized onto standard output.

use std::io::{LineWriter, Stdout, Write};
use std::sync::{Arc, Mutex};

/// A cloneable handle on the partition's standard output.
#[derive(Clone)]
pub struct Console(Arc<Mutex<LineWriter<Stdout>>>);

impl Console {
    /// The console on this process's standard output.
    pub fn stdout() -> Console {
        Console(Arc::new(Mutex::new(LineWriter::new(std::io::stdout()))))
    }

    /// Writes guest bytes. Errors (the supervisor went away) are dropped: the guest must not
    /// stall on its console.
    pub fn write_guest(&self, bytes: &[u8]) {
        let mut out = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let _ = out.write_all(bytes);
    }

    /// Flushes a partial last line.
    pub fn flush(&self) {
        let _ = self.0.lock().unwrap_or_else(|e| e.into_inner()).flush();
    }
}

impl Write for Console {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_guest(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Console::flush(self);
        Ok(())
    }
}
