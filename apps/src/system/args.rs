//! Command-line pieces shared by the binaries: LSP parameters and address resolution.

use std::net::{SocketAddr, ToSocketAddrs};

use clap::Args;
use lsp_core::{Limits, Params};

/// The LSP parameters (docs/protocol.md §8) as flags, defaulting to the reference's.
#[derive(Args, Clone, Debug)]
pub struct LspArgs {
    /// Epochs of silence after which the peer is declared lost.
    #[arg(long, default_value_t = Params::default().epoch_limit)]
    pub epoch_limit: u32,
    /// Epoch length in milliseconds.
    #[arg(long, default_value_t = Params::default().epoch_millis)]
    pub epoch_millis: u64,
    /// Sliding window size.
    #[arg(long, default_value_t = Params::default().window_size)]
    pub window: u32,
    /// Cap on unacknowledged messages in flight.
    #[arg(long, default_value_t = Params::default().max_unacked_messages)]
    pub max_unacked: u32,
    /// Cap on a message's back-off, in epochs.
    #[arg(long, default_value_t = Params::default().max_backoff_interval)]
    pub max_backoff: u32,
}

impl Default for LspArgs {
    fn default() -> Self {
        let p = Params::default();
        LspArgs {
            epoch_limit: p.epoch_limit,
            epoch_millis: p.epoch_millis,
            window: p.window_size,
            max_unacked: p.max_unacked_messages,
            max_backoff: p.max_backoff_interval,
        }
    }
}

impl LspArgs {
    /// The parameters, or why they are invalid.
    pub fn params(&self) -> Result<Params, String> {
        let params = Params {
            epoch_limit: self.epoch_limit,
            epoch_millis: self.epoch_millis,
            window_size: self.window,
            max_backoff_interval: self.max_backoff,
            max_unacked_messages: self.max_unacked,
        };
        params.validate().map_err(|e| e.to_string())?;
        Ok(params)
    }
}

/// A server endpoint's resource limits (admission control and back-pressure, see
/// [`Limits`]) as flags, defaulting to the core's.
#[derive(Args, Clone, Debug)]
pub struct LimitsArgs {
    /// Connections the server keeps at once; a Connect beyond them is dropped (after
    /// evicting the oldest half-open connection, if any).
    #[arg(long, default_value_t = Limits::default().max_connections)]
    pub max_connections: u32,
    /// Connections that have sent nothing since their Connect; the oldest is evicted to make
    /// room for a new one.
    #[arg(long, default_value_t = Limits::default().max_half_open)]
    pub max_half_open: u32,
    /// Messages a connection may have received and not yet handed to the program; beyond
    /// them new Data is not acknowledged, and the peer backs off until there is room.
    #[arg(long, default_value_t = Limits::default().max_unread_messages)]
    pub max_unread: u32,
}

impl LimitsArgs {
    /// The limits, or why they are invalid.
    pub fn limits(&self) -> Result<Limits, String> {
        let limits = Limits {
            max_connections: self.max_connections,
            max_half_open: self.max_half_open,
            max_unread_messages: self.max_unread,
        };
        limits.validate().map_err(|e| e.to_string())?;
        Ok(limits)
    }
}

/// Resolves `HOST:PORT` (`[::1]:9999` for an IPv6 literal), preferring an IPv4 address
/// when a name has both: a server started with `--bind 0.0.0.0` or on a host without IPv6
/// listens on IPv4 alone, and `localhost` often resolves to `::1` first.
pub fn resolve(addr: &str) -> Result<SocketAddr, String> {
    let all: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| format!("bad address `{addr}`: {e}"))?
        .collect();
    all.iter()
        .find(|a| a.is_ipv4())
        .or_else(|| all.first())
        .copied()
        .ok_or_else(|| format!("address `{addr}` resolves to nothing"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_reference_params() {
        assert_eq!(LspArgs::default().params(), Ok(Params::default()));
        let bad = LspArgs {
            window: 0,
            ..LspArgs::default()
        };
        assert!(bad.params().is_err());
    }

    #[test]
    fn resolves_localhost_to_ipv4() {
        let addr = resolve("localhost:9").expect("localhost resolves");
        assert!(addr.is_ipv4());
        assert_eq!(addr.port(), 9);
        assert!(resolve("no port").is_err());
    }
}
