//! Counters every endpoint keeps: what it sent, what it dropped and why.

/// Running totals for one endpoint (all of its connections together). Counters only ever
/// grow; a driver may snapshot them at any time with the endpoint's `stats()`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams handed to the endpoint.
    pub datagrams_received: u64,
    /// Datagrams the endpoint queued for sending.
    pub datagrams_sent: u64,
    /// Data messages sent for the first time.
    pub data_sent: u64,
    /// Data messages sent again by back-off.
    pub retransmissions: u64,
    /// Connect messages sent again while connecting.
    pub connect_retries: u64,
    /// Heartbeats `(Ack, id, 0)` sent.
    pub heartbeats_sent: u64,
    /// Heartbeats received on a connection (an `(Ack, id, 0)` matching no message).
    pub heartbeats_received: u64,
    /// Acks sent for received Data (duplicates re-acked included).
    pub acks_sent: u64,
    /// Messages handed to the application, in order.
    pub messages_delivered: u64,
    /// Half-open connections evicted to admit a new one (server; see
    /// [`Limits`](crate::Limits)).
    pub half_open_evicted: u64,
    /// Received datagrams dropped, by reason.
    pub dropped: DropCounts,
}

/// Why received datagrams were dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropCounts {
    /// Longer than the 1500-byte datagram limit.
    pub oversized: u64,
    /// Not decodable (bad JSON, unknown type, negative size, bad base64, …).
    pub malformed: u64,
    /// From an address with no connection (and not a Connect), or not from the server.
    pub unknown_peer: u64,
    /// Data whose payload is shorter than its `Size`.
    pub short_payload: u64,
    /// Data whose checksum does not match.
    pub bad_checksum: u64,
    /// Data at or beyond `expected + window_size`.
    pub out_of_window: u64,
    /// Data already received (re-acked, not delivered again).
    pub duplicate_data: u64,
    /// New Data while its connection had `max_unread_messages` unread messages: not acked,
    /// not buffered; the peer resends it (see [`Limits`](crate::Limits)).
    pub unread_full: u64,
    /// Acks or CAcks matching no message in flight (heartbeats not included).
    pub stray_ack: u64,
    /// Connect from an address that already has a connection.
    pub duplicate_connect: u64,
    /// Connect from a new address while every connection slot is in use and no half-open
    /// connection is left to evict (see [`Limits`](crate::Limits)): not answered.
    pub connection_limit: u64,
    /// Connect whose initial sequence number is outside
    /// [`ISN_DOMAIN`](crate::ISN_DOMAIN): not answered, no connection made.
    pub invalid_isn: u64,
    /// Anything that arrives while the endpoint cannot use it (before the connect-ack, a
    /// Connect while the server closes, Data or Connect sent to a client, …).
    pub unexpected: u64,
}
