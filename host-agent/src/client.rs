//! Talking to an appliance: the management protocol over TCP or a serial line.
//!
//! [`Client`] opens a link, runs the `Hello` handshake (checking, with a key, that the
//! appliance holds the same key), and then sends requests one at a time. Every failure is
//! a [`ClientError`] that says what went wrong and what to do.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

use fulcrum_mgmt::envelope::{ClientError as ProtocolError, ClientSession, Key};
use fulcrum_mgmt::framing::{FrameReader, encode};
use fulcrum_mgmt::message::{ErrorCode, HelloInfo, Request, Response};
use fulcrum_mgmt::{MAX_ENVELOPE, MAX_FRAME};

/// Why talking to the appliance failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The link could not be opened.
    #[error("cannot reach the appliance at {target}: {source}")]
    Connect {
        /// What was dialled.
        target: String,
        /// Why.
        source: std::io::Error,
    },
    /// The link failed mid-exchange.
    #[error("link to the appliance failed: {0}")]
    Io(#[from] std::io::Error),
    /// No answer in time.
    #[error("the appliance did not answer within {0:?}")]
    Timeout(Duration),
    /// The appliance's answer does not verify with our key.
    #[error(
        "authentication failed: the appliance's answer does not verify with this key (wrong management key?)"
    )]
    WrongKey,
    /// The appliance refused the request.
    #[error("the appliance refused the request: {message}{}", details.iter().map(|d| format!("\n  {d}")).collect::<String>())]
    Refused {
        /// The refusal's code.
        code: ErrorCode,
        /// Its message.
        message: String,
        /// Its details.
        details: Vec<String>,
    },
    /// The answer did not make sense.
    #[error("bad answer from the appliance: {0}")]
    Protocol(String),
}

impl From<ProtocolError> for ClientError {
    fn from(e: ProtocolError) -> Self {
        match e {
            ProtocolError::Unauthenticated => ClientError::WrongKey,
            ProtocolError::Refused(r) => ClientError::Refused {
                code: r.code,
                message: r.message.to_string(),
                details: r.details.iter().map(|d| d.to_string()).collect(),
            },
            other => ClientError::Protocol(other.to_string()),
        }
    }
}

enum Link {
    Tcp(TcpStream),
    Serial(std::fs::File),
}

impl Link {
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Link::Tcp(s) => s.write_all(bytes),
            Link::Serial(f) => f.write_all(bytes),
        }
    }
}

/// An open management session.
pub struct Client {
    link: Link,
    session: ClientSession,
    reader: Box<FrameReader<MAX_FRAME>>,
    pending: Vec<u8>,
    timeout: Duration,
    hello: HelloInfo,
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    getrandom::getrandom(&mut b).unwrap_or_else(|_| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        b = (t.as_nanos() as u64).to_le_bytes();
    });
    u64::from_le_bytes(b)
}

impl Client {
    /// Connects over TCP (`host:port`) and authenticates with `key`.
    pub fn connect_tcp(target: &str, key: Key, timeout: Duration) -> Result<Client, ClientError> {
        let connect_err = |source| ClientError::Connect {
            target: target.to_string(),
            source,
        };
        let addrs: Vec<SocketAddr> = target.to_socket_addrs().map_err(connect_err)?.collect();
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    stream.set_read_timeout(Some(timeout))?;
                    return Client::open(Link::Tcp(stream), Some(key), timeout);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(connect_err(last.unwrap_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "no address")
        })))
    }

    /// Opens a serial line (raw, 115200 baud) and authenticates with `key` if given.
    pub fn open_serial(
        path: &Path,
        key: Option<Key>,
        timeout: Duration,
    ) -> Result<Client, ClientError> {
        let connect_err = |source| ClientError::Connect {
            target: path.display().to_string(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(connect_err)?;
        configure_serial(&file).map_err(connect_err)?;
        Client::open(Link::Serial(file), key, timeout)
    }

    fn open(link: Link, key: Option<Key>, timeout: Duration) -> Result<Client, ClientError> {
        let mut client = Client {
            link,
            session: ClientSession::new(key, random_u64()),
            reader: Box::new(FrameReader::new()),
            pending: Vec::new(),
            timeout,
            hello: HelloInfo {
                name: Default::default(),
                version: Default::default(),
                session: 0,
                auth_required: false,
                generation: 0,
            },
        };
        let mut env = vec![0u8; MAX_ENVELOPE];
        let n = client
            .session
            .hello(&mut env)
            .map_err(|_| ClientError::Protocol("hello does not fit".into()))?;
        // A leading delimiter flushes any garbage a serial line may hold.
        client.link.write_all(&[0])?;
        client.send(&env[..n])?;
        let answer = client.receive()?;
        client.hello = client.session.accept_hello(&answer)?;
        Ok(client)
    }

    /// What the appliance said in its `Hello`.
    pub fn hello(&self) -> &HelloInfo {
        &self.hello
    }

    /// Sends `request` and waits for its answer.
    pub fn request(&mut self, request: &Request) -> Result<Response, ClientError> {
        let mut env = vec![0u8; MAX_ENVELOPE];
        let n = self
            .session
            .request(&mut env, request)
            .map_err(|_| ClientError::Protocol("request too large for one message".into()))?;
        self.send(&env[..n])?;
        let answer = self.receive()?;
        Ok(self.session.accept(&answer)?)
    }

    fn send(&mut self, envelope: &[u8]) -> Result<(), ClientError> {
        let mut framed = vec![0u8; MAX_FRAME + 1];
        let n = encode(envelope, &mut framed)
            .map_err(|_| ClientError::Protocol("request too large".into()))?;
        self.link.write_all(&framed[..n])?;
        Ok(())
    }

    fn receive(&mut self) -> Result<Vec<u8>, ClientError> {
        let deadline = std::time::Instant::now() + self.timeout;
        let mut chunk = vec![0u8; 4096];
        loop {
            while !self.pending.is_empty() {
                let (used, outcome) = self.reader.feed(&self.pending);
                self.pending.drain(..used);
                match outcome {
                    Some(Ok(n)) => return Ok(self.reader.frame()[..n].to_vec()),
                    Some(Err(e)) => {
                        return Err(ClientError::Protocol(format!("undecodable frame: {e:?}")));
                    }
                    None => {}
                }
            }
            if std::time::Instant::now() >= deadline {
                return Err(ClientError::Timeout(self.timeout));
            }
            let n = match &mut self.link {
                Link::Tcp(s) => match s.read(&mut chunk) {
                    Ok(0) => {
                        return Err(ClientError::Io(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "the appliance closed the connection",
                        )));
                    }
                    Ok(n) => n,
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        0
                    }
                    Err(e) => return Err(e.into()),
                },
                Link::Serial(f) => match f.read(&mut chunk) {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
                    Err(e) => return Err(e.into()),
                },
            };
            self.pending.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Raw mode, 115200 8N1, reads return after 100 ms without data.
fn configure_serial(file: &std::fs::File) -> std::io::Result<()> {
    use nix::sys::termios::{self, BaudRate, SetArg, SpecialCharacterIndices};
    let mut t = termios::tcgetattr(file).map_err(std::io::Error::from)?;
    termios::cfmakeraw(&mut t);
    let _ = termios::cfsetspeed(&mut t, BaudRate::B115200);
    t.control_chars[SpecialCharacterIndices::VMIN as usize] = 0;
    t.control_chars[SpecialCharacterIndices::VTIME as usize] = 1;
    termios::tcsetattr(file, SetArg::TCSANOW, &t).map_err(std::io::Error::from)?;
    Ok(())
}
