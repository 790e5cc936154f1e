//! Which appliance to talk to, and with which key: `--host`, `--serial` or a named
//! `--target` from the client config file, the key from `--key-file`, the target's
//! `key_file`, or `FULCRUM_KEY`.
//!
//! The client config (`$FULCRUM_TARGETS`, else `~/.config/fulcrum/targets.toml`):
//!
//! ```toml
//! [target.edge-1]
//! host = "192.0.2.10"            # port 7070 unless given as host:port
//! key_file = "/etc/fulcrum/edge-1.key"
//!
//! [target.lab]
//! serial = "/dev/ttyACM0"        # the NUCLEO's ST-LINK serial port
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fulcrum_mgmt::envelope::Key;
use serde::Deserialize;

use crate::client::{Client, ClientError};

/// The management port of an appliance.
pub const DEFAULT_PORT: u16 = 7070;

/// Where an appliance is and how to authenticate.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TargetArgs {
    /// Appliance to manage over the network: HOST or HOST:PORT (port 7070 by default).
    #[arg(long, global = true, value_name = "HOST[:PORT]")]
    pub host: Option<String>,
    /// Appliance to manage over its serial console (e.g. /dev/ttyACM0).
    #[arg(long, global = true, value_name = "PATH", conflicts_with = "host")]
    pub serial: Option<PathBuf>,
    /// A named appliance from the client config ($FULCRUM_TARGETS or
    /// ~/.config/fulcrum/targets.toml).
    #[arg(long, global = true, value_name = "NAME")]
    pub target: Option<String>,
    /// File holding the management key (default: the target's key_file, or $FULCRUM_KEY).
    #[arg(long, global = true, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Seconds to wait for the appliance to answer.
    #[arg(long, global = true, default_value_t = 5.0, value_name = "SECONDS")]
    pub timeout: f64,
}

/// Why the target could not be worked out.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// Nothing says which appliance.
    #[error(
        "no appliance given: pass --host HOST, --serial PATH, or --target NAME (named targets live in {0})"
    )]
    Missing(String),
    /// The client config is unreadable or invalid.
    #[error("{path}: {message}")]
    Config {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// No such named target.
    #[error("no target named {name:?} in {path} (known: {known})")]
    Unknown {
        /// Asked for.
        name: String,
        /// The file.
        path: String,
        /// The names it has.
        known: String,
    },
    /// The key is unreadable or invalid.
    #[error("management key: {0}")]
    Key(String),
    /// A network target without a key.
    #[error(
        "managing over the network needs the management key: pass --key-file FILE or set FULCRUM_KEY"
    )]
    NoKey,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientConfig {
    #[serde(default)]
    target: BTreeMap<String, NamedTarget>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct NamedTarget {
    host: Option<String>,
    serial: Option<PathBuf>,
    key_file: Option<PathBuf>,
}

/// The client config file's path.
pub fn client_config_path() -> PathBuf {
    if let Some(p) = std::env::var_os("FULCRUM_TARGETS") {
        return PathBuf::from(p);
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("fulcrum/targets.toml")
}

/// A link to open.
#[derive(Debug, Clone)]
pub enum Link {
    /// TCP to `host:port`.
    Tcp(String),
    /// A serial port.
    Serial(PathBuf),
}

/// A resolved target.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The link.
    pub link: Link,
    /// The key (required for TCP).
    pub key: Option<Key>,
    /// How long to wait for answers.
    pub timeout: Duration,
}

impl Resolved {
    /// A short description for messages (`192.0.2.10:7070`, `/dev/ttyACM0`).
    pub fn describe(&self) -> String {
        match &self.link {
            Link::Tcp(a) => a.clone(),
            Link::Serial(p) => p.display().to_string(),
        }
    }

    /// Opens the link and authenticates.
    pub fn connect(&self) -> Result<Client, ClientError> {
        match &self.link {
            Link::Tcp(addr) => {
                let key = self
                    .key
                    .clone()
                    .ok_or_else(|| ClientError::Protocol("no key".into()))?;
                Client::connect_tcp(addr, key, self.timeout)
            }
            Link::Serial(path) => Client::open_serial(path, self.key.clone(), self.timeout),
        }
    }
}

fn read_key(path: &Path) -> Result<Key, TargetError> {
    let bytes = std::fs::read(path)
        .map_err(|e| TargetError::Key(format!("cannot read {}: {e}", path.display())))?;
    let text = String::from_utf8_lossy(&bytes);
    Key::new(text.trim().as_bytes())
        .ok_or_else(|| TargetError::Key(format!("{} must hold 1 to 64 bytes", path.display())))
}

impl TargetArgs {
    /// Works out the link and key.
    pub fn resolve(&self) -> Result<Resolved, TargetError> {
        let config_path = client_config_path();
        let named = match &self.target {
            None => None,
            Some(name) => {
                let shown = config_path.display().to_string();
                let text =
                    std::fs::read_to_string(&config_path).map_err(|e| TargetError::Config {
                        path: shown.clone(),
                        message: format!("cannot read the client config: {e}"),
                    })?;
                let config: ClientConfig =
                    toml::from_str(&text).map_err(|e| TargetError::Config {
                        path: shown.clone(),
                        message: e.to_string(),
                    })?;
                let known = config.target.keys().cloned().collect::<Vec<_>>().join(", ");
                Some(
                    config
                        .target
                        .get(name)
                        .cloned()
                        .ok_or_else(|| TargetError::Unknown {
                            name: name.clone(),
                            path: shown,
                            known,
                        })?,
                )
            }
        };
        let host = self
            .host
            .clone()
            .or_else(|| named.as_ref().and_then(|n| n.host.clone()));
        let serial = self
            .serial
            .clone()
            .or_else(|| named.as_ref().and_then(|n| n.serial.clone()));
        let key_file = self
            .key_file
            .clone()
            .or_else(|| named.as_ref().and_then(|n| n.key_file.clone()));
        let key = match key_file {
            Some(path) => Some(read_key(&path)?),
            None => match std::env::var("FULCRUM_KEY") {
                Ok(k) if !k.trim().is_empty() => {
                    Some(Key::new(k.trim().as_bytes()).ok_or_else(|| {
                        TargetError::Key("FULCRUM_KEY must be 1 to 64 bytes".into())
                    })?)
                }
                _ => None,
            },
        };
        let timeout = Duration::from_secs_f64(self.timeout.clamp(0.1, 3600.0));
        let link = match (host, serial) {
            (Some(host), _) => {
                let addr = if host.contains(':') {
                    host
                } else {
                    format!("{host}:{DEFAULT_PORT}")
                };
                if key.is_none() {
                    return Err(TargetError::NoKey);
                }
                Link::Tcp(addr)
            }
            (None, Some(serial)) => Link::Serial(serial),
            (None, None) => return Err(TargetError::Missing(config_path.display().to_string())),
        };
        Ok(Resolved { link, key, timeout })
    }
}
