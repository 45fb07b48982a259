//! The client nodes: each an LSP client endpoint that sends its case's Request once
//! connected and checks the answer against the truth.

use super::*;

impl MiningWorld {
    // ----- clients -----------------------------------------------------------------------

    pub(super) fn start_client(&mut self, client: usize) {
        self.digest.u64(0xC11E ^ client as u64);
        if self.clients[client].end.is_some() {
            return;
        }
        let addr = self.new_addr(Owner::Client(client));
        let isn = self.net_isn();
        match ClientEndpoint::new(self.case.params, isn, self.now) {
            Ok(ep) => {
                let node = &mut self.clients[client];
                node.addr = Some(addr);
                node.ep = Some(ep);
                self.trace(|| format!("client{client} starts at {}", addr.0));
                self.drain_client(client);
            }
            Err(e) => self.fail(format!("client params: {e:?}")),
        }
    }

    pub(super) fn drain_client(&mut self, client: usize) {
        let node = &mut self.clients[client];
        let drained = Drained::take(node.addr, &mut node.ep, &mut node.timer);
        for event in self.emit(drained) {
            self.on_client_event(client, event);
        }
    }

    pub(super) fn on_client_event(&mut self, client: usize, event: ClientEvent) {
        if self.clients[client].end.is_some() {
            return;
        }
        match event {
            ClientEvent::Connected(_) => {
                let plan = &self.case.clients[client];
                let request = encode_request(&plan.data, plan.lower, plan.upper, plan.mode);
                if let Some(ep) = self.clients[client].ep.as_mut() {
                    if ep.write(request).is_ok() {
                        self.drain_client(client);
                    }
                }
            }
            ClientEvent::Message(payload) if self.case.clients[client].mode.is_target() => {
                self.on_target_answer(client, &payload);
            }
            ClientEvent::Message(payload) => match Message::decode(&payload) {
                Ok(Message::Result { hash, nonce }) => {
                    let truth = self.truth[client];
                    self.trace(|| format!("client{client} answered {hash} {nonce}"));
                    let escaped = self.tainted.contains(&self.case.clients[client].data);
                    if (hash, nonce) != truth && escaped {
                        self.tally.lazy_escaped += 1;
                    } else if (hash, nonce) != truth {
                        self.fail(format!(
                            "client{client} got {hash} at {nonce}, the minimum is {} at {}",
                            truth.0, truth.1
                        ));
                    }
                    // The client exits with its answer; the server will lose it.
                    let node = &mut self.clients[client];
                    node.end = Some(ClientEnd::Answered);
                    node.ep = None;
                }
                other => self.fail(format!("client{client} received {other:?}")),
            },
            ClientEvent::ConnectionLost | ClientEvent::ConnectFailed | ClientEvent::Closed(_) => {
                self.trace(|| format!("client{client} lost its connection"));
                let node = &mut self.clients[client];
                node.end = Some(ClientEnd::Lost);
                node.ep = None;
            }
        }
    }
}
