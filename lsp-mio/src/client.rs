//! The blocking LSP client.

use std::collections::VecDeque;
use std::net::SocketAddr;

use lsp_core::{ApiError, ClientEndpoint, ClientEvent, ConnId, Params, Stats, Timestamp};

use crate::clock::Clock;
use crate::driver::{Driver, Machine, Outbox};
use crate::socket;
use lsp_core::runtime::{ClientReadError, CloseError, StartError};

/// The client core plus the application-side state.
struct ClientMachine {
    endpoint: ClientEndpoint,
    server: SocketAddr,
    /// Messages not yet returned by `read`.
    inbox: VecDeque<Vec<u8>>,
    /// The id from the connect-ack, once connected.
    connected: Option<ConnId>,
    /// Connecting failed, or the connection was lost.
    ended: bool,
    /// `close` was called.
    closing: bool,
    /// The core's close result, once it completed.
    closed: Option<Result<(), lsp_core::CloseError>>,
}

impl Machine for ClientMachine {
    fn handle_datagram(&mut self, now: Timestamp, from: SocketAddr, datagram: &[u8]) {
        // The socket is connected, so the kernel already filters; this is belt and braces.
        if from == self.server {
            self.endpoint.handle_datagram(now, datagram);
        }
    }

    fn handle_timeout(&mut self, now: Timestamp) {
        self.endpoint.handle_timeout(now);
    }

    fn poll_timeout(&self) -> Option<Timestamp> {
        self.endpoint.poll_timeout()
    }

    fn drain(&mut self, outbox: &mut Outbox) -> bool {
        while let Some(datagram) = self.endpoint.poll_transmit() {
            outbox.push(self.server, datagram);
        }
        let mut progress = false;
        while let Some(event) = self.endpoint.poll_event() {
            progress = true;
            match event {
                ClientEvent::Connected(id) => self.connected = Some(id),
                ClientEvent::Message(payload) => self.inbox.push_back(payload),
                ClientEvent::ConnectFailed | ClientEvent::ConnectionLost => self.ended = true,
                ClientEvent::Closed(result) => self.closed = Some(result),
            }
        }
        progress
    }
}

/// An LSP client on its own I/O thread (lsp.md §9 "Client").
///
/// All methods take `&self`: one thread may block in [`read`](Self::read) while others
/// write. Dropping the client stops its I/O thread at once, without the flushing that
/// [`close`](Self::close) does.
pub struct Client {
    driver: Driver<ClientMachine>,
    conn_id: ConnId,
    local_addr: SocketAddr,
}

impl Client {
    /// Connects to the server at `server` with initial sequence number `isn`, waiting until
    /// the server acknowledges. Fails if the parameters are invalid, the socket cannot be
    /// set up, or no connect-ack arrives within `epoch_limit` epochs ("connection refused"
    /// notices are ignored: the server may start later).
    pub fn connect(server: SocketAddr, isn: i64, params: Params) -> Result<Client, StartError> {
        params.validate()?;
        let socket = socket::bind(socket::any_local_for(server))?;
        socket.connect(server)?;
        let clock = Clock::start();
        let machine = ClientMachine {
            endpoint: ClientEndpoint::new(params, isn, clock.now())?,
            server,
            inbox: VecDeque::new(),
            connected: None,
            ended: false,
            closing: false,
            closed: None,
        };
        let driver = Driver::start("lsp-mio-client", machine, socket, true, clock)?;
        let local_addr = driver.local_addr()?;
        let shared = driver.shared();
        let mut locked = shared.lock();
        let conn_id = loop {
            if let Some(id) = locked.machine.connected {
                break id;
            }
            if locked.machine.ended {
                drop(locked);
                return Err(StartError::NoAnswer);
            }
            if let Some(e) = &locked.failure {
                let e = std::io::Error::new(e.kind(), e.to_string());
                drop(locked);
                return Err(StartError::Io(e));
            }
            locked = shared.wait(locked);
        };
        drop(locked);
        Ok(Client {
            driver,
            conn_id,
            local_addr,
        })
    }

    /// The connection id the server assigned.
    pub fn conn_id(&self) -> ConnId {
        self.conn_id
    }

    /// The local address of the client's socket.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Waits for the next in-order message from the server. Fails once the client was
    /// closed, or once the connection was lost and every message received before the loss
    /// has been read (and from then on).
    pub fn read(&self) -> Result<Vec<u8>, ClientReadError> {
        let shared = self.driver.shared();
        let mut locked = shared.lock();
        loop {
            if let Some(e) = &locked.failure {
                return Err(ClientReadError::Io(e.clone()));
            }
            if locked.machine.closing || locked.is_stopped() {
                return Err(ClientReadError::Closed);
            }
            if let Some(payload) = locked.machine.inbox.pop_front() {
                return Ok(payload);
            }
            if locked.machine.ended {
                return Err(ClientReadError::ConnectionLost);
            }
            locked = shared.wait(locked);
        }
    }

    /// Queues `payload` for the server; never blocks. Fails if the connection was lost, the
    /// client closed, or the payload does not fit in one datagram.
    pub fn write(&self, payload: impl Into<Vec<u8>>) -> Result<(), ApiError> {
        let shared = self.driver.shared();
        let mut locked = shared.lock();
        if locked.machine.closing || locked.is_stopped() {
            return Err(ApiError::Closed);
        }
        locked.machine.endpoint.write(payload.into())?;
        shared.after_call(&mut locked);
        Ok(())
    }

    /// Waits until everything written was sent and acknowledged, meanwhile still
    /// acknowledging, heartbeating and detecting loss; then stops the I/O thread, after which
    /// the client sends nothing. A loss first discards what was pending and is reported as
    /// an error. Every later call fails.
    pub fn close(&self) -> Result<(), CloseError> {
        let shared = self.driver.shared();
        let mut locked = shared.lock();
        if locked.machine.closing || locked.is_stopped() {
            return Err(CloseError::AlreadyClosed);
        }
        locked.machine.closing = true;
        if let Err(e) = locked.machine.endpoint.close() {
            debug_assert!(false, "core refused close: {e}");
        }
        shared.after_call(&mut locked);
        // Readers blocked in `read` fail now.
        shared.notify(&locked);
        let result = loop {
            if let Some(result) = locked.machine.closed.take() {
                break result.map_err(CloseError::from);
            }
            if let Some(e) = &locked.failure {
                break Err(CloseError::Io(e.clone()));
            }
            if locked.is_stopped() {
                break Err(CloseError::Aborted);
            }
            locked = shared.wait(locked);
        };
        drop(locked);
        self.driver.stop();
        result
    }

    /// Stops the endpoint at once, without the flushing of `close`: the I/O thread exits and
    /// nothing more is sent; calls waiting at that moment and every later call fail. Dropping
    /// the handle does the same.
    pub fn abort(&self) {
        self.driver.stop();
    }

    /// A snapshot of the core's counters.
    pub fn stats(&self) -> Stats {
        *self.driver.shared().lock().machine.endpoint.stats()
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("conn_id", &self.conn_id)
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}
