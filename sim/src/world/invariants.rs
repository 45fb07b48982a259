//! The invariants checked at every epoch tick (timely loss detection, bounded buffers) and
//! the bounds they use.

use lsp_core::{ConnId, Params, Timestamp};

use super::World;
use crate::net::Addr;

impl World {
    pub(super) fn check_server_conn_bounds(&mut self, conn: ConnId) {
        let Some(server) = self.server.as_ref() else {
            return;
        };
        let params = *server.ep.params();
        let (Some(buffered), Some(in_flight)) = (
            server.ep.buffered_out_of_order(conn),
            server.ep.in_flight(conn),
        ) else {
            return;
        };
        let unread = server.ep.unread(conn);
        let bound = server.ep.limits().max_unread_messages as usize + params.window_size as usize;
        if let Some(p) = check_bounds(params, buffered, in_flight, || {
            format!("server, connection {conn}")
        }) {
            self.fail(p);
        }
        if unread >= bound {
            self.fail(format!(
                "server, connection {conn}: {unread} unread messages, bound {bound}"
            ));
        }
    }

    pub(super) fn check_server_after_tick(&mut self) {
        let now = self.now;
        let Some(server) = self.server.as_mut() else {
            return;
        };
        let params = *server.ep.params();
        let limit = params.epoch() * params.epoch_limit;
        let mut problem = None;
        let mut gone = Vec::new();
        for &conn in &server.kept {
            let Some(&addr) = server.ep.peer_addr(conn) else {
                gone.push(conn);
                continue;
            };
            if !self.keep_alive.kept_alive(Addr::SERVER, addr, server.ticks) && problem.is_none() {
                problem = Some(format!(
                    "server: sent neither Data nor a heartbeat to connection {conn} since the previous tick"
                ));
            }
            let heard = server
                .last_heard
                .get(&conn)
                .copied()
                .unwrap_or(Timestamp::ZERO);
            if now > heard + limit && problem.is_none() {
                problem = Some(format!(
                    "server: connection {conn} silent since {heard}, still not lost at {now}"
                ));
            }
        }
        for conn in gone {
            server.kept.remove(&conn);
        }
        let kept: Vec<ConnId> = server.kept.iter().copied().collect();
        if let Some(p) = problem {
            self.fail(p);
        }
        for conn in kept {
            self.check_server_conn_bounds(conn);
        }
    }

    pub(super) fn check_client_after_tick(&mut self, addr: Addr) {
        let now = self.now;
        let Some(node) = self.client_node(addr) else {
            return;
        };
        let (Some(ep), Some(life)) = (node.ep.as_ref(), node.lives.last()) else {
            return;
        };
        if ep.is_finished() {
            return;
        }
        let limit = node.params.epoch() * node.params.epoch_limit;
        let quiet = !self.keep_alive.kept_alive(addr, Addr::SERVER, node.ticks);
        let problem = if quiet {
            Some(format!(
                "{addr}: sent neither Connect, Data nor a heartbeat since the previous tick"
            ))
        } else if life.conn.is_some() {
            (now > life.last_heard + limit).then(|| {
                format!(
                    "{addr}: silent since {}, still not lost at {now}",
                    life.last_heard
                )
            })
        } else {
            (now > life.started + limit).then(|| {
                format!(
                    "{addr}: connecting since {}, still not failed at {now}",
                    life.started
                )
            })
        };
        if let Some(p) = problem {
            self.fail(p);
        }
    }
}

/// The §8.4 window for a loss: after at least `(K−1)·δ` and at most `K·δ` of silence.
pub(super) fn loss_timing_problem(
    params: Params,
    heard: Timestamp,
    now: Timestamp,
) -> Option<String> {
    let silence = now.saturating_duration_since(heard);
    let epoch = params.epoch();
    let k = params.epoch_limit;
    // A datagram handled at the very instant of a tick, before it, belongs to the epoch
    // that tick ends: the loss then comes exactly (K−1)·δ later.
    if silence < epoch * (k - 1) {
        return Some(format!(
            "declared lost after only {silence:?} of silence (K = {k}, δ = {epoch:?})"
        ));
    }
    if silence > epoch * k {
        return Some(format!(
            "declared lost only after {silence:?} of silence (K = {k}, δ = {epoch:?})"
        ));
    }
    None
}

/// §10: at most `ω − 1` messages held out of order, at most `min(M, ω)` in flight.
pub(super) fn check_bounds(
    params: Params,
    buffered: usize,
    in_flight: usize,
    who: impl Fn() -> String,
) -> Option<String> {
    let window = params.window_size as usize;
    let max_unacked = params.max_unacked_messages as usize;
    if buffered >= window.max(1) {
        return Some(format!(
            "{}: {buffered} messages buffered out of order, window {window}",
            who()
        ));
    }
    if in_flight > max_unacked.min(window) {
        return Some(format!(
            "{}: {in_flight} messages in flight, window {window}, max unacked {max_unacked}",
            who()
        ));
    }
    None
}
