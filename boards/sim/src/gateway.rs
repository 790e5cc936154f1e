//! Reaching the firmware's management service from the host in virtual-network mode: a
//! TCP listener on the host (e.g. 127.0.0.1:7070) whose connections are carried by an
//! "operator" virtual host to the appliance's management port inside the virtual network.

use std::net::Ipv4Addr;

use embassy_futures::select::{Either, select};
use embassy_net::Stack;
use embassy_net::tcp::TcpSocket;
use embassy_time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Accepts host connections on `listener` forever; each is relayed from `stack` to
/// `target:port`.
pub async fn serve(listener: TcpListener, stack: Stack<'static>, target: Ipv4Addr, port: u16) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        log::debug!("management gateway: {peer} connected");
        tokio::task::spawn_local(async move {
            if let Err(e) = relay(stream, stack, target, port).await {
                log::debug!("management gateway: {peer}: {e}");
            }
        });
    }
}

async fn relay(
    mut stream: TcpStream,
    stack: Stack<'static>,
    target: Ipv4Addr,
    port: u16,
) -> anyhow::Result<()> {
    let mut rx = vec![0u8; 16 * 1024];
    let mut tx = vec![0u8; 16 * 1024];
    let mut socket = TcpSocket::new(stack, &mut rx, &mut tx);
    socket.set_timeout(Some(Duration::from_secs(300)));
    socket
        .connect((target, port))
        .await
        .map_err(|e| anyhow::anyhow!("appliance {target}:{port} unreachable: {e:?}"))?;
    let (mut host_r, mut host_w) = stream.split();
    let mut a = vec![0u8; 4096];
    let mut b = vec![0u8; 4096];
    loop {
        match select(host_r.read(&mut a), socket.read(&mut b)).await {
            Either::First(Ok(0)) | Either::First(Err(_)) => break,
            Either::First(Ok(n)) => {
                let mut rest = &a[..n];
                while !rest.is_empty() {
                    let k = socket
                        .write(rest)
                        .await
                        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                    rest = &rest[k..];
                }
            }
            Either::Second(Ok(0)) | Either::Second(Err(_)) => break,
            Either::Second(Ok(n)) => host_w.write_all(&b[..n]).await?,
        }
    }
    socket.close();
    let _ = socket.flush().await;
    Ok(())
}
