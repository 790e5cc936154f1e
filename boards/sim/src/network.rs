//! The simulated FPGA's network port: an in-process virtual network, or a tap device
//! (real traffic; needs root or CAP_NET_ADMIN).

use std::io::{Read, Write};

use embassy_net_tuntap::TunTap;
use tokio::io::unix::AsyncFd;

use crate::link::{End, MAX_FRAME};

/// Where port 1 of the simulated FPGA is attached.
pub enum NetworkPort {
    /// An end of a link into the in-process virtual network.
    Virtual(End),
    /// A tap device.
    Tap(AsyncFd<TunTap>),
}

impl NetworkPort {
    /// Opens (or creates) tap device `name`; bring it up and bridge it outside.
    pub fn tap(name: &str) -> std::io::Result<NetworkPort> {
        let tap = TunTap::new(name)?;
        // SAFETY: `TunTap` owns its file descriptor and closes it on drop, after the
        // `AsyncFd` that wraps it has deregistered it.
        let fd = unsafe { AsyncFd::register(tap) }.map_err(|e| e.into_parts().1)?;
        Ok(NetworkPort::Tap(fd))
    }

    /// The next frame from the network.
    pub async fn recv(&mut self) -> Vec<u8> {
        match self {
            NetworkPort::Virtual(end) => end.recv().await,
            NetworkPort::Tap(fd) => {
                let mut buf = vec![0u8; MAX_FRAME];
                loop {
                    let Ok(mut guard) = fd.readable_mut().await else {
                        std::future::pending::<()>().await;
                        continue;
                    };
                    match guard.try_io(|inner| inner.get_mut().read(&mut buf)) {
                        Ok(Ok(n)) => {
                            buf.truncate(n);
                            return buf;
                        }
                        Ok(Err(e)) => {
                            log::warn!("tap read failed: {e}");
                        }
                        Err(_would_block) => continue,
                    }
                }
            }
        }
    }

    /// Sends a frame to the network (dropped if the device is not ready within a moment,
    /// as a full NIC ring drops).
    pub async fn send(&mut self, frame: &[u8]) {
        match self {
            NetworkPort::Virtual(end) => end.send(frame),
            NetworkPort::Tap(fd) => {
                for _ in 0..3 {
                    let Ok(mut guard) = fd.writable_mut().await else {
                        return;
                    };
                    match guard.try_io(|inner| inner.get_mut().write(frame)) {
                        Ok(Ok(_)) => return,
                        Ok(Err(e)) => {
                            log::debug!("tap write failed: {e}");
                            return;
                        }
                        Err(_would_block) => continue,
                    }
                }
            }
        }
    }
}
