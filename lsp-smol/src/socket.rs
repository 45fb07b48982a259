//! Socket setup: non-blocking UDP sockets with large buffers.

use std::io;
use std::net::{SocketAddr, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

/// Receive buffer length: any UDP datagram fits whole, so an oversized one is seen at its
/// true length and dropped by the core instead of being truncated into something that
/// decodes (lsp.md §1).
pub(crate) const RECV_BUF_LEN: usize = 65_536;

/// Kernel socket buffer size requested for both directions. The default receive buffer
/// holds only ~90 full-size datagrams, too few for a burst from many clients; Linux caps the
/// request at `net.core.rmem_max`, which is fine.
const KERNEL_BUF_BYTES: usize = 4 << 20;

/// A non-blocking UDP socket bound to `addr`, with enlarged kernel buffers.
pub(crate) fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: a smaller buffer only means more loss under bursts, which LSP recovers.
    let _ = socket.set_recv_buffer_size(KERNEL_BUF_BYTES);
    let _ = socket.set_send_buffer_size(KERNEL_BUF_BYTES);
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// The unspecified local address of the same family as `peer`, port 0.
pub(crate) fn any_local_for(peer: SocketAddr) -> SocketAddr {
    match peer {
        SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    }
}
