//! What both sessions track about their own end: whether `close` was called, how it ended,
//! and whether the driver still runs.

use std::io;
use std::sync::Arc;

use super::errors::CloseError;
use super::session::DriverStatus;
use crate::ApiError;

/// The end-of-life state of a session, and the errors each application call reports in it.
#[derive(Debug, Default)]
pub(super) struct Lifecycle {
    /// `close` was called.
    closing: bool,
    /// The core's close result, once it completed (taken by `poll_closed`).
    closed: Option<Result<(), crate::CloseError>>,
    status: DriverStatus,
}

impl Lifecycle {
    /// Why `read` cannot return data: the driver's failure, else (as `closed`) a close call
    /// or a stopped driver; `None` while the session is open.
    pub(super) fn read_refusal<E>(
        &self,
        io: impl FnOnce(Arc<io::Error>) -> E,
        closed: E,
    ) -> Option<E> {
        if let DriverStatus::Failed(e) = &self.status {
            return Some(io(e.clone()));
        }
        (self.closing || self.status.is_stopped()).then_some(closed)
    }

    /// `write` and `close_conn` fail once `close` was called or the driver stopped.
    pub(super) fn check_open(&self) -> Result<(), ApiError> {
        if self.closing || self.status.is_stopped() {
            Err(ApiError::Closed)
        } else {
            Ok(())
        }
    }

    /// Records a `close` call; fails with the driver's failure if it failed, else if a
    /// `close` was already made or the endpoint was stopped. The caller then closes its
    /// endpoint.
    pub(super) fn begin_close(&mut self) -> Result<(), CloseError> {
        if let DriverStatus::Failed(e) = &self.status {
            return Err(CloseError::Io(e.clone()));
        }
        if self.closing || self.status.is_stopped() {
            return Err(CloseError::AlreadyClosed);
        }
        self.closing = true;
        Ok(())
    }

    /// Records the endpoint's close result.
    pub(super) fn closed(&mut self, result: Result<(), crate::CloseError>) {
        self.closed = Some(result);
    }

    /// How the close ended, or `None` while it is in progress: the endpoint's result; the
    /// driver's failure, or `Aborted` if the endpoint was stopped first.
    pub(super) fn poll_closed(&mut self) -> Option<Result<(), CloseError>> {
        if let Some(result) = self.closed.take() {
            return Some(result.map_err(CloseError::from));
        }
        match &self.status {
            DriverStatus::Running => None,
            DriverStatus::Stopped => Some(Err(CloseError::Aborted)),
            DriverStatus::Failed(e) => Some(Err(CloseError::Io(e.clone()))),
        }
    }

    /// Whether `close` was called.
    pub(super) fn is_closing(&self) -> bool {
        self.closing
    }

    /// Records that the driver stopped.
    pub(super) fn halt(&mut self, status: DriverStatus) {
        self.status = status;
    }

    /// Whether the driver runs.
    pub(super) fn status(&self) -> &DriverStatus {
        &self.status
    }
}
