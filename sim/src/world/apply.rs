//! Draining endpoints after every call: their datagrams go to the network, their events
//! to the application views, each event checked against what the peer wrote.

use std::time::Duration;

use lsp_core::{ClientEvent, ConnId, ServerEvent, Timestamp};

use super::invariants::{check_bounds, loss_timing_problem};
use super::{show, Event, World};
use crate::net::Addr;
use crate::view::{ConnView, Echo};

impl World {
    pub(super) fn after_server(&mut self) {
        self.drain_server(None);
    }

    /// Sends the server's datagrams, applies its events to the view (checking them) and
    /// re-arms its timer. `isn` is the sequence number of the datagram just handled, which
    /// tells which life of a client a new connection belongs to.
    pub(super) fn drain_server(&mut self, isn: Option<i64>) {
        let now = self.now;
        let Some(server) = self.server.as_mut() else {
            return;
        };
        let mut transmits = Vec::new();
        while let Some(t) = server.ep.poll_transmit() {
            transmits.push(t);
        }
        let mut events = Vec::new();
        while server.reading {
            let Some(e) = server.ep.poll_event() else {
                break;
            };
            events.push(e);
        }
        let deadline = server.ep.poll_timeout();
        if let Some((at, generation)) = server.timer.rearm(deadline) {
            self.schedule(
                at,
                Event::Timer {
                    node: Addr::SERVER,
                    generation,
                },
            );
        }
        let closed_before = self
            .server
            .as_ref()
            .is_some_and(|s| s.view.closed.is_some());
        if closed_before && !transmits.is_empty() {
            self.fail("server: sent a datagram after close completed");
        }
        // Events first: the application's view then includes what these datagrams
        // acknowledge (the CAck rewriting fault relies on it).
        for event in events {
            self.on_server_event(now, event, isn);
        }
        for t in transmits {
            self.send(Addr::SERVER, t.destination, t.payload);
        }
    }

    pub(super) fn on_server_event(
        &mut self,
        now: Timestamp,
        event: ServerEvent<Addr>,
        isn: Option<i64>,
    ) {
        match event {
            ServerEvent::Connected { conn, addr } => {
                self.digest.u64(0xC0 ^ conn.0 as u64);
                self.trace(|| format!("server: {addr} connected as {conn}"));
                let incarnation = isn.and_then(|isn| {
                    self.client_lives(addr)
                        .iter()
                        .rposition(|l| l.isn == isn)
                        .map(|i| i as u32)
                });
                let Some(server) = self.server.as_mut() else {
                    return;
                };
                let expected_id = server.last_id + 1;
                server.last_id = conn.0;
                let fresh = server
                    .view
                    .conns
                    .insert(
                        conn,
                        ConnView {
                            addr,
                            incarnation: incarnation.unwrap_or(u32::MAX),
                            reads: Vec::new(),
                            written: Vec::new(),
                            lost: false,
                            closed: false,
                        },
                    )
                    .is_none();
                server.last_heard.insert(conn, now);
                server.kept.insert(conn);
                server.by_addr.insert(addr, conn);
                if conn.0 != expected_id || !fresh {
                    self.fail(format!(
                        "server: assigned id {conn}, expected {expected_id}"
                    ));
                }
                if incarnation.is_none() {
                    self.fail(format!(
                        "server: connection {conn} from {addr} without a Connect"
                    ));
                }
            }
            ServerEvent::Message { conn, payload } => {
                self.digest.u64(0x3E5 ^ conn.0 as u64);
                self.digest.bytes(&payload);
                self.on_server_message(now, conn, payload);
            }
            ServerEvent::ConnectionLost { conn } => {
                self.digest.u64(0x1057 ^ conn.0 as u64);
                self.trace(|| format!("server: {conn} lost"));
                let Some(server) = self.server.as_mut() else {
                    return;
                };
                let params = *server.ep.params();
                let heard = server.last_heard.get(&conn).copied();
                let problem = match server.view.conns.get_mut(&conn) {
                    None => Some(format!("server: unknown connection {conn} lost")),
                    Some(view) if view.lost || view.closed => {
                        Some(format!("server: event for ended connection {conn}"))
                    }
                    Some(view) => {
                        view.lost = true;
                        heard.and_then(|h| loss_timing_problem(params, h, now))
                    }
                };
                if let Some(p) = problem {
                    self.fail(format!("server: connection {conn}: {p}"));
                }
            }
            ServerEvent::ConnectionClosed { conn } => {
                self.digest.u64(0xC105 ^ conn.0 as u64);
                let ok = self
                    .server
                    .as_ref()
                    .and_then(|s| s.view.conns.get(&conn))
                    .is_some_and(|v| v.closed && !v.lost);
                if !ok {
                    self.fail(format!("server: unexpected ConnectionClosed for {conn}"));
                }
            }
            ServerEvent::Closed(result) => {
                self.digest.u64(0xC1);
                self.trace(|| format!("server: closed {result:?}"));
                let Some(server) = self.server.as_mut() else {
                    return;
                };
                if server.view.closed.is_some() {
                    self.fail("server: Closed reported twice");
                    return;
                }
                server.view.closed = Some(result);
                server.view.closed_at = Some(now);
            }
        }
    }

    pub(super) fn on_server_message(&mut self, now: Timestamp, conn: ConnId, payload: Vec<u8>) {
        let Some(server) = self.server.as_mut() else {
            return;
        };
        let Some(view) = server.view.conns.get_mut(&conn) else {
            self.fail(format!("server: message from unknown connection {conn}"));
            return;
        };
        if view.lost || view.closed || server.view.closed.is_some() {
            self.fail(format!(
                "server: message delivered from ended connection {conn}"
            ));
            return;
        }
        let index = view.reads.len();
        let (addr, incarnation) = (view.addr, view.incarnation);
        let written = addr
            .client_index()
            .and_then(|i| self.clients.get(i))
            .and_then(|n| n.lives.get(incarnation as usize))
            .and_then(|l| l.written.get(index));
        if written != Some(&payload) {
            let what = match written {
                None => "a message never written (duplicate or stray)".to_string(),
                Some(w) => format!("{} instead of {}", show(&payload), show(w)),
            };
            self.fail(format!(
                "server: message #{index} of connection {conn} ({addr}): delivered {what}"
            ));
            return;
        }
        view.reads.push(payload.clone());
        match server.echo {
            Echo::Off => {}
            Echo::Immediate => {
                let _ = self.server_write(conn, payload);
            }
            Echo::Sleep { max } => {
                let sleep = self.rng.range(0, max.as_micros() as u64);
                let Some(server) = self.server.as_mut() else {
                    return;
                };
                let at = server.busy_until.max(now) + Duration::from_micros(sleep);
                server.busy_until = at;
                self.schedule(at, Event::Echo { conn, payload });
            }
        }
    }

    pub(super) fn after_client(&mut self, addr: Addr) {
        let now = self.now;
        let Some(node) = addr.client_index().and_then(|i| self.clients.get_mut(i)) else {
            return;
        };
        let Some(ep) = node.ep.as_mut() else {
            return;
        };
        let mut transmits = Vec::new();
        while let Some(t) = ep.poll_transmit() {
            transmits.push(t);
        }
        let mut events = Vec::new();
        while let Some(e) = ep.poll_event() {
            events.push(e);
        }
        let deadline = ep.poll_timeout();
        let bounds = check_bounds(
            node.params,
            ep.buffered_out_of_order(),
            ep.in_flight(),
            || format!("{addr}"),
        );
        if let Some((at, generation)) = node.timer.rearm(deadline) {
            self.schedule(
                at,
                Event::Timer {
                    node: addr,
                    generation,
                },
            );
        }
        if let Some(problem) = bounds {
            self.fail(problem);
        }
        let ended = self.client(addr).is_some_and(|l| l.ended_at.is_some());
        if ended && !transmits.is_empty() {
            self.fail(format!(
                "{addr}: sent a datagram after its endpoint finished"
            ));
        }
        for event in events {
            self.on_client_event(now, addr, event);
        }
        for bytes in transmits {
            self.send(addr, Addr::SERVER, bytes);
        }
    }

    pub(super) fn on_client_event(&mut self, now: Timestamp, addr: Addr, event: ClientEvent) {
        let life_index = self.client_lives(addr).len().saturating_sub(1);
        let conn_view = |id: Option<ConnId>| {
            id.and_then(|id| self.server.as_ref().and_then(|s| s.view.conns.get(&id)))
        };
        let (owner, expected) = match &event {
            ClientEvent::Connected(id) => {
                (conn_view(Some(*id)).map(|v| (v.addr, v.incarnation)), None)
            }
            ClientEvent::Message(_) => {
                let life = self.client(addr);
                let index = life.map_or(0, |l| l.reads.len());
                let view = conn_view(life.and_then(|l| l.conn));
                (None, view.and_then(|v| v.written.get(index).cloned()))
            }
            _ => (None, None),
        };
        let Some(node) = addr.client_index().and_then(|i| self.clients.get_mut(i)) else {
            return;
        };
        let params = node.params;
        let Some(life) = node.lives.last_mut() else {
            return;
        };
        let mut problem = None;
        match event {
            ClientEvent::Connected(id) => {
                self.digest.u64(0xCC ^ id.0 as u64);
                if self.verbose {
                    println!("{now} {addr}: connected as {id}");
                }
                life.conn = Some(id);
                life.connected_at = Some(now);
                life.last_heard = now;
                if owner != Some((addr, life_index as u32)) {
                    problem = Some(format!(
                        "connect-ack with id {id}, which the server gave to another client"
                    ));
                }
            }
            ClientEvent::Message(payload) => {
                self.digest.u64(0xC3E5);
                self.digest.bytes(&payload);
                let index = life.reads.len();
                let written = expected.as_ref();
                if life.is_over() {
                    problem = Some("message delivered after the endpoint finished".to_string());
                } else if written != Some(&payload) {
                    let what = match written {
                        None => "a message never written (duplicate or stray)".to_string(),
                        Some(w) => format!("{} instead of {}", show(&payload), show(w)),
                    };
                    problem = Some(format!("message #{index}: delivered {what}"));
                } else {
                    life.reads.push(payload);
                }
            }
            ClientEvent::ConnectFailed => {
                self.digest.u64(0xCF);
                if self.verbose {
                    println!("{now} {addr}: connect failed");
                }
                life.connect_failed = true;
                life.ended_at.get_or_insert(now);
                let expected = life.started + params.epoch() * params.epoch_limit;
                if now != expected {
                    problem = Some(format!("connect failed at {now}, expected at {expected}"));
                }
            }
            ClientEvent::ConnectionLost => {
                self.digest.u64(0xC7);
                if self.verbose {
                    println!("{now} {addr}: connection lost");
                }
                life.lost = true;
                life.ended_at.get_or_insert(now);
                problem = loss_timing_problem(params, life.last_heard, now);
            }
            ClientEvent::Closed(result) => {
                self.digest.u64(0xCD);
                if self.verbose {
                    println!("{now} {addr}: closed {result:?}");
                }
                if life.closed.is_some() {
                    problem = Some("Closed reported twice".to_string());
                }
                life.closed = Some(result);
                life.ended_at.get_or_insert(now);
            }
        }
        if let Some(p) = problem {
            self.fail(format!("{addr}: {p}"));
        }
    }
}
