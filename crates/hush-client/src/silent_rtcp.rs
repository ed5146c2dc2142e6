//! An interceptor that drops every RTCP packet the client would send: no receiver reports, no
//! NACKs, no transport-wide feedback, no keyframe requests ([`crate::ClientOptions::send_rtcp`]
//! off). Only for tests of a subscriber that never acknowledges anything; it counts what it
//! dropped so a test can tell it was in the path.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rtc::interceptor::{Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

/// Drops outgoing RTCP, passes everything else.
pub(crate) struct SilentRtcp {
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
    dropped: Arc<AtomicU64>,
}

impl SilentRtcp {
    pub(crate) fn new(dropped: Arc<AtomicU64>) -> Self {
        Self {
            read: VecDeque::new(),
            write: VecDeque::new(),
            dropped,
        }
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for SilentRtcp {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            self.dropped
                .fetch_add(packets.len() as u64, Ordering::Relaxed);
            return Ok(());
        }
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write.pop_front()
    }
}

impl Interceptor for SilentRtcp {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}
