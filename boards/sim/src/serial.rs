//! The simulated board's serial console: a pseudo-terminal. The firmware serves the
//! management protocol on the master side; the host opens the slave path (`/dev/pts/N`)
//! exactly as it would open `/dev/ttyACM0`.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use nix::pty::{OpenptyResult, openpty};
use nix::sys::termios::{self, SetArg};
use tokio::io::unix::AsyncFd;

/// The master side of a pseudo-terminal, as an async byte stream.
pub struct Pty {
    master: AsyncFd<OwnedFd>,
    /// Kept open so the master never sees a hang-up between host sessions.
    _slave: OwnedFd,
    path: PathBuf,
}

impl Pty {
    /// Opens a raw-mode pseudo-terminal.
    pub fn open() -> std::io::Result<Pty> {
        let OpenptyResult { master, slave } = openpty(None, None).map_err(std::io::Error::from)?;
        let mut t = termios::tcgetattr(&slave).map_err(std::io::Error::from)?;
        termios::cfmakeraw(&mut t);
        termios::tcsetattr(&slave, SetArg::TCSANOW, &t).map_err(std::io::Error::from)?;
        let path = nix::unistd::ttyname(&slave).map_err(std::io::Error::from)?;
        let flags = nix::fcntl::fcntl(&master, nix::fcntl::FcntlArg::F_GETFL)
            .map_err(std::io::Error::from)?;
        let flags = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(&master, nix::fcntl::FcntlArg::F_SETFL(flags))
            .map_err(std::io::Error::from)?;
        Ok(Pty {
            // SAFETY: the `OwnedFd` is moved into the `AsyncFd` and closed only when it is
            // dropped, after deregistration.
            master: unsafe { AsyncFd::register(master) }.map_err(|e| e.into_parts().1)?,
            _slave: slave,
            path,
        })
    }

    /// The path a host opens (`/dev/pts/N`).
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

/// An I/O error of the pseudo-terminal.
#[derive(Debug)]
pub struct SerialError(pub std::io::Error);

impl std::fmt::Display for SerialError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "serial console: {}", self.0)
    }
}

impl std::error::Error for SerialError {}

impl embedded_io_async::Error for SerialError {
    fn kind(&self) -> embedded_io_async::ErrorKind {
        embedded_io_async::ErrorKind::Other
    }
}

impl embedded_io_async::ErrorType for Pty {
    type Error = SerialError;
}

impl embedded_io_async::Read for Pty {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        loop {
            let mut guard = self.master.readable().await.map_err(SerialError)?;
            match guard
                .try_io(|fd| nix::unistd::read(fd.get_ref(), buf).map_err(std::io::Error::from))
            {
                Ok(result) => return result.map_err(SerialError),
                Err(_would_block) => continue,
            }
        }
    }
}

impl embedded_io_async::Write for Pty {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        loop {
            let mut guard = self.master.writable().await.map_err(SerialError)?;
            match guard
                .try_io(|fd| nix::unistd::write(fd.get_ref(), buf).map_err(std::io::Error::from))
            {
                Ok(result) => return result.map_err(SerialError),
                Err(_would_block) => continue,
            }
        }
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}
