//! The simulated board's flash sector: a file, replaced atomically (write, fsync, rename),
//! so a crash mid-save leaves the old record or the new one, never a torn one.

use std::io::Write;
use std::path::PathBuf;

use fulcrum_firmware::persist::{ConfigStore, StoreError};

/// A config record kept in `path`.
pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    /// A store at `path` (its directory must exist).
    pub fn new(path: PathBuf) -> Self {
        FileStore { path }
    }
}

impl ConfigStore for FileStore {
    fn load(&mut self, buf: &mut [u8]) -> Result<Option<usize>, StoreError> {
        match std::fs::read(&self.path) {
            Ok(bytes) if bytes.len() <= buf.len() => {
                buf[..bytes.len()].copy_from_slice(&bytes);
                Ok(Some(bytes.len()))
            }
            Ok(_) => Err(StoreError::TooLarge),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(_) => Err(StoreError::Io),
        }
    }

    fn save(&mut self, record: &[u8]) -> Result<(), StoreError> {
        let tmp = self.path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(record)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        };
        write().map_err(|_| StoreError::Io)
    }
}
