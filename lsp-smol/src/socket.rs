//! Socket setup: non-blocking UDP sockets with large buffers, and the datagram operations
//! the shared driver state uses.

use std::io;
use std::net::SocketAddr;

use async_io::Async;
use lsp_core::runtime::DatagramSocket;
use socket2::{Domain, Protocol, Socket, Type};

/// Kernel socket buffer size requested for both directions. The default receive buffer
/// holds only ~90 full-size datagrams, too few for a burst from many clients; Linux caps the
/// request at `net.core.rmem_max`, which is fine.
const KERNEL_BUF_BYTES: usize = 4 << 20;

/// A non-blocking UDP socket bound to `addr`, with enlarged kernel buffers. The unspecified
/// IPv6 address (`[::]`) is bound dual-stack where the OS allows it, so that IPv4 peers
/// reach it too (as IPv4-mapped addresses).
pub(crate) fn bind(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let SocketAddr::V6(v6) = addr {
        if v6.ip().is_unspecified() {
            // Best effort: where IPv6-only is forced, the socket serves IPv6 alone.
            let _ = socket.set_only_v6(false);
        }
    }
    // Best effort: a smaller buffer only means more loss under bursts, which LSP recovers.
    let _ = socket.set_recv_buffer_size(KERNEL_BUF_BYTES);
    let _ = socket.set_send_buffer_size(KERNEL_BUF_BYTES);
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Every interface of both families on `port`: `[::]` (dual-stack, see [`bind`]).
pub(crate) fn all_interfaces(port: u16) -> SocketAddr {
    SocketAddr::from(([0u16; 8], port))
}

/// Whether binding [`all_interfaces`] failed because the host has no IPv6 (so that IPv4's
/// `0.0.0.0` is the next best), rather than for a reason IPv4 would share.
pub(crate) fn lacks_ipv6(error: &io::Error) -> bool {
    !matches!(
        error.kind(),
        io::ErrorKind::AddrInUse | io::ErrorKind::PermissionDenied
    )
}

/// The unspecified local address of the same family as `peer`, port 0.
pub(crate) fn any_local_for(peer: SocketAddr) -> SocketAddr {
    match peer {
        SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    }
}

/// An endpoint's socket as the driver state sees it.
pub(crate) struct EndpointSocket {
    pub(crate) inner: Async<std::net::UdpSocket>,
    /// Connected to its only peer: `send` is cheaper than `send_to`.
    pub(crate) connected: bool,
}

impl DatagramSocket for EndpointSocket {
    type Addr = SocketAddr;

    fn send_to(&self, to: &SocketAddr, datagram: &[u8]) -> io::Result<()> {
        let socket = self.inner.get_ref();
        if self.connected {
            socket.send(datagram).map(drop)
        } else {
            socket.send_to(datagram, *to).map(drop)
        }
    }

    fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.inner.get_ref().recv_from(buf)
    }
}
