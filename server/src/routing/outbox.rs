//! The queue of outputs, and refusals on their way into it.

use std::collections::VecDeque;

use hush_proto::{ErrorCode, ServerMessage};

use super::output::{ConnId, Output};

/// Why a request was refused: the code and a fixed message for the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Refusal {
    pub(super) code: ErrorCode,
    pub(super) message: &'static str,
}

impl Refusal {
    pub(super) const fn new(code: ErrorCode, message: &'static str) -> Self {
        Self { code, message }
    }
}

/// Outputs waiting for [`super::Relay::poll_output`].
#[derive(Debug, Default)]
pub(super) struct Outbox(VecDeque<Output>);

impl Outbox {
    pub(super) fn push(&mut self, output: Output) {
        self.0.push_back(output);
    }

    pub(super) fn pop(&mut self) -> Option<Output> {
        self.0.pop_front()
    }

    pub(super) fn send(&mut self, conn: ConnId, message: ServerMessage) {
        self.push(Output::Send { conn, message });
    }

    /// An `error` message; a fatal one is followed by closing the connection.
    pub(super) fn error(
        &mut self,
        conn: ConnId,
        code: ErrorCode,
        message: impl Into<String>,
        fatal: bool,
    ) {
        self.send(conn, ServerMessage::error(code, message, fatal));
        if fatal {
            self.push(Output::Close { conn });
        }
    }

    pub(super) fn refuse(&mut self, conn: ConnId, refusal: Refusal, fatal: bool) {
        self.error(conn, refusal.code, refusal.message, fatal);
    }
}
