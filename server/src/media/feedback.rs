//! Lets keyframe requests from subscribers reach the relay.
//!
//! webrtc-rs 0.21 hands inbound RTCP to the interceptors only: a packet reaches the application
//! (`TrackLocalEvent::OnRtcpPacket` on the forwarded track) only when an interceptor marks it
//! with `Attribute::DeliverToApplication`. Without this interceptor a browser's PLI for a
//! forwarded video track stops inside webrtc-rs, the publisher never sends a new keyframe, and a
//! subscriber that missed the first one decodes nothing.
//!
//! Both directions of keyframe feedback live here: [`KeyframeFeedback`] lets a subscriber's
//! PLI/FIR through, [`rtcp_loop`] hands it to the core (which rate limits and merges requests),
//! and [`ask_publisher`] sends the publisher the PLI the core decided on.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hush_proto::TrackId;

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::sansio::Protocol;
use rtc::shared::error::Error;
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal as _, TrackLocalEvent};
use webrtc::media_stream::track_remote::TrackRemote;

use crate::bus::Input;
use crate::routing::ConnId;

/// Marks inbound PLI and FIR for delivery to the application and lets every other packet end
/// where webrtc-rs ends it. Registered last in the chain, so the other interceptors (reports,
/// NACK, TWCC) have seen all inbound RTCP before this narrows it.
#[derive(Default)]
pub(crate) struct KeyframeFeedback {
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

/// Whether `packet` asks for a keyframe.
pub(crate) fn is_keyframe_request(packet: &dyn rtc::rtcp::Packet) -> bool {
    let any = packet.as_any();
    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeFeedback {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            let requests: Vec<Box<dyn rtc::rtcp::Packet>> = packets
                .iter()
                .filter(|p| is_keyframe_request(p.as_ref()))
                .cloned()
                .collect();
            if requests.is_empty() {
                return Ok(()); // the interceptors before this one have acted on it
            }
            msg.message.packet = Packet::Rtcp(requests);
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write.pop_front()
    }
}

impl Interceptor for KeyframeFeedback {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// Reads RTCP from the subscriber about a forwarded track: PLI and FIR become keyframe requests
/// for the core (which rate limits them). The track yields nothing until negotiation binds it,
/// so this polls, slowly, until then; it ends when the forward is removed (aborted).
pub(super) async fn rtcp_loop(
    local: Arc<TrackLocalStaticRTP>,
    driver: mpsc::Sender<Input>,
    subscriber: ConnId,
    track: TrackId,
) {
    loop {
        match local.poll().await {
            Some(TrackLocalEvent::OnRtcpPacket(packets)) => {
                if packets.iter().any(|p| is_keyframe_request(p.as_ref())) {
                    let _ = driver.try_send(Input::Keyframe { subscriber, track });
                }
            }
            Some(_) => {}
            None => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// Asks a publisher for a keyframe on its stream `media_ssrc` with an RTCP PLI.
pub(super) async fn ask_publisher(remote: &Arc<dyn TrackRemote>, media_ssrc: u32) {
    let pli = PictureLossIndication {
        sender_ssrc: 0,
        media_ssrc,
    };
    let _ = remote.write_rtcp(vec![Box::new(pli)]).await;
}
