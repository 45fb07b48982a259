//! What both simulated worlds schedule with: the event queue of virtual time, and the timer
//! slot of a node.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use lsp_core::Timestamp;

/// Events ordered by time, and events at the same instant in the order they were scheduled,
/// so a run is a pure function of its inputs.
pub(crate) struct Agenda<E> {
    queue: BinaryHeap<Reverse<Scheduled<E>>>,
    seq: u64,
}

struct Scheduled<E> {
    time: Timestamp,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Scheduled<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}

impl<E> Eq for Scheduled<E> {}

impl<E> PartialOrd for Scheduled<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<E> Ord for Scheduled<E> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.time, self.seq).cmp(&(other.time, other.seq))
    }
}

impl<E> Agenda<E> {
    /// An empty agenda.
    pub(crate) fn new() -> Agenda<E> {
        Agenda {
            queue: BinaryHeap::new(),
            seq: 0,
        }
    }

    /// Schedules `event` at `time`, after everything already scheduled at `time`.
    pub(crate) fn schedule(&mut self, time: Timestamp, event: E) {
        let seq = self.seq;
        self.seq += 1;
        self.queue.push(Reverse(Scheduled { time, seq, event }));
    }

    /// When the next event is due, if any.
    pub(crate) fn next_time(&self) -> Option<Timestamp> {
        self.queue.peek().map(|Reverse(next)| next.time)
    }

    /// Takes the next event and its time.
    pub(crate) fn pop(&mut self) -> Option<(Timestamp, E)> {
        self.queue
            .pop()
            .map(|Reverse(next)| (next.time, next.event))
    }

    /// Whether nothing is scheduled.
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

/// A node's timer: the deadline currently armed, and a generation that invalidates queue
/// entries scheduled for deadlines since replaced.
#[derive(Debug, Default)]
pub(crate) struct TimerSlot {
    armed: Option<Timestamp>,
    generation: u64,
}

impl TimerSlot {
    /// Re-arms to `deadline`; returns the time and generation to schedule if it changed.
    pub(crate) fn rearm(&mut self, deadline: Option<Timestamp>) -> Option<(Timestamp, u64)> {
        if deadline == self.armed {
            return None;
        }
        self.armed = deadline;
        self.generation += 1;
        deadline.map(|at| (at, self.generation))
    }

    /// Whether a timer event of `generation` is current; if so the slot is now unarmed.
    pub(crate) fn fire(&mut self, generation: u64) -> bool {
        if generation != self.generation {
            return false;
        }
        self.armed = None;
        true
    }

    /// Cancels whatever is armed (a crashed node).
    pub(crate) fn disarm(&mut self) {
        self.armed = None;
        self.generation += 1;
    }
}
