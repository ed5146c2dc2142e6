//! Publishing, subscriptions, the forwarding table, envelopes and keyframe requests.

use std::time::Duration;

use hush_proto::limits::MAX_E2EE_PAYLOAD_BYTES;
use hush_proto::{
    ClientMessage, E2eeBroadcast, E2eeFrom, E2eeTo, ErrorCode, OpaqueBytes, Sdp, ServerMessage,
    Source, TrackId, TrackRef, Unpublish,
};

use super::*;
use crate::routing::MediaSignal;

#[test]
fn a_subscribe_only_token_cannot_publish() {
    let mut sim = Sim::new();
    let a = sim.join("a", "r", full());
    let v = sim.join("viewer", "r", viewer());
    let out = sim.send(v, publish(Source::Camera));
    assert_refused(&out, v, ErrorCode::PublishNotAllowed);
    assert!(to(&out, a).is_empty(), "nothing else happens");
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::Published { .. } | Output::StartForward { .. }))
    );
    assert_alive(&mut sim, v);
}

#[test]
fn sources_outside_the_grant_are_refused() {
    let mut sim = Sim::new();
    let a = sim.join("a", "r", only_sources(&[Source::Microphone]));
    let out = sim.send(a, publish(Source::Screen));
    assert_refused(&out, a, ErrorCode::SourceNotAllowed);
    let out = sim.send(a, publish(Source::Microphone));
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Published {
            source: Source::Microphone,
            ..
        }
    )));
}

#[test]
fn a_track_is_forwarded_to_every_subscriber_but_its_publisher() {
    let (mut sim, [a, b, silent]) =
        room_of([("a", full()), ("b", viewer()), ("silent", publisher_only())]);
    let out = sim.send(a, publish(Source::Camera));
    let track = TrackId(0);
    assert!(out.contains(&Output::Published {
        publisher: a,
        track,
        source: Source::Camera,
        mid: Some("0".into())
    }));
    for conn in [a, b, silent] {
        match to(&out, conn).as_slice() {
            [ServerMessage::TrackPublished(t)] => {
                assert_eq!(
                    (t.track, t.source, t.participant.as_str()),
                    (track, Source::Camera, "a")
                );
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(out.contains(&Output::StartForward {
        publisher: a,
        track,
        subscriber: b
    }));
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::StartForward { subscriber, .. } if *subscriber != b))
    );
    assert_eq!(sim.relay.subscribers(a, track), [b]);

    // A later subscriber gets the track at once, and sees it in `joined`.
    let (c, out) = sim.try_join("c", "r", viewer());
    assert!(out.contains(&Output::StartForward {
        publisher: a,
        track,
        subscriber: c
    }));
    match to(&out, c).first() {
        Some(ServerMessage::Joined(j)) => assert_eq!(j.tracks.len(), 1),
        other => panic!("{other:?}"),
    }
    assert_eq!(sim.relay.subscribers(a, track), [b, c]);

    // Unsubscribe and subscribe again.
    let out = sim.send(b, ClientMessage::Unsubscribe(TrackRef { track }));
    assert_eq!(
        out,
        [Output::StopForward {
            publisher: a,
            track,
            subscriber: b
        }]
    );
    assert_eq!(sim.relay.subscribers(a, track), [c]);
    let out = sim.send(b, ClientMessage::Subscribe(TrackRef { track }));
    assert_eq!(
        out,
        [Output::StartForward {
            publisher: a,
            track,
            subscriber: b
        }]
    );
    assert!(
        sim.send(b, ClientMessage::Subscribe(TrackRef { track }))
            .is_empty(),
        "idempotent"
    );
    // Without the grant, or for one's own or an unknown track: refused.
    let out = sim.send(silent, ClientMessage::Subscribe(TrackRef { track }));
    assert_refused(&out, silent, ErrorCode::SubscribeNotAllowed);
    let out = sim.send(a, ClientMessage::Subscribe(TrackRef { track }));
    assert_refused(&out, a, ErrorCode::UnknownTrack);
    let out = sim.send(b, ClientMessage::Subscribe(TrackRef { track: TrackId(9) }));
    assert_refused(&out, b, ErrorCode::UnknownTrack);
}

#[test]
fn unpublish_and_leave_stop_forwarding() {
    let mut sim = Sim::new();
    let [a, b] = sim.join_all("r", ["a", "b"]);
    sim.send(a, publish(Source::Camera));
    sim.send(a, publish(Source::Microphone));
    let out = sim.send(a, publish(Source::Camera));
    assert_refused(&out, a, ErrorCode::AlreadyPublished);

    let out = sim.send(
        a,
        ClientMessage::Unpublish(Unpublish {
            source: Source::Camera,
        }),
    );
    assert!(out.contains(&Output::StopForward {
        publisher: a,
        track: TrackId(0),
        subscriber: b
    }));
    assert!(out.contains(&Output::Unpublished {
        publisher: a,
        track: TrackId(0)
    }));
    assert!(
        matches!(to(&out, b).as_slice(), [ServerMessage::TrackUnpublished(t)] if t.track == TrackId(0))
    );
    let out = sim.send(
        a,
        ClientMessage::Unpublish(Unpublish {
            source: Source::Camera,
        }),
    );
    assert_refused(&out, a, ErrorCode::NotPublished);

    // Track ids are not reused either.
    let out = sim.send(a, publish(Source::Camera));
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Published {
            track: TrackId(2),
            ..
        }
    )));

    sim.relay.disconnected(sim.now, a);
    let out = sim.drain();
    for track in [TrackId(1), TrackId(2)] {
        assert!(out.contains(&Output::StopForward {
            publisher: a,
            track,
            subscriber: b
        }));
        assert!(out.contains(&Output::Unpublished {
            publisher: a,
            track
        }));
    }
    assert!(matches!(
        to(&out, b).last(),
        Some(ServerMessage::ParticipantLeft(_))
    ));
}

#[test]
fn a_subscriber_that_leaves_stops_receiving() {
    let mut sim = Sim::new();
    let [a, b] = sim.join_all("r", ["a", "b"]);
    sim.send(a, publish(Source::Camera));
    let out = sim.send(b, ClientMessage::Leave);
    assert!(out.contains(&Output::StopForward {
        publisher: a,
        track: TrackId(0),
        subscriber: b
    }));
    assert!(sim.relay.subscribers(a, TrackId(0)).is_empty());
}

#[test]
fn envelopes_reach_only_the_named_member_of_the_same_room() {
    let mut sim = Sim::new();
    let [a, b, c] = sim.join_all("r", ["a", "b", "c"]);
    let x = sim.join("x", "elsewhere", full());
    let payload = OpaqueBytes::new(vec![0xAB; 120]);

    let out = sim.send(
        a,
        ClientMessage::E2ee(E2eeTo {
            to: pid("b"),
            payload: payload.clone(),
        }),
    );
    let expected = ServerMessage::E2ee(E2eeFrom {
        from: pid("a"),
        payload: payload.clone(),
    });
    assert_eq!(
        out,
        [Output::Send {
            conn: b,
            message: expected
        }]
    );
    assert!(to(&out, c).is_empty(), "only the named recipient");

    // A member of another room is unknown from here: refused, and nothing reaches it.
    let out = sim.send(
        a,
        ClientMessage::E2ee(E2eeTo {
            to: pid("x"),
            payload: payload.clone(),
        }),
    );
    assert_refused(&out, a, ErrorCode::UnknownParticipant);
    assert!(to(&out, x).is_empty());

    // Over the size limit: refused before routing.
    let big = OpaqueBytes::new(vec![0; MAX_E2EE_PAYLOAD_BYTES + 1]);
    let out = sim.send(
        a,
        ClientMessage::E2ee(E2eeTo {
            to: pid("b"),
            payload: big,
        }),
    );
    assert_refused(&out, a, ErrorCode::FieldTooLarge);
    assert!(to(&out, b).is_empty());

    // The sender is named by the relay: a spoofed "from" field is ignored.
    let text = format!(
        r#"{{"v":1,"type":"e2ee","to":"b","from":"c","payload":"{}"}}"#,
        "q83v"
    );
    let out = sim.send_text(a, &text);
    assert!(matches!(to(&out, b).as_slice(), [ServerMessage::E2ee(e)] if e.from == pid("a")));
}

#[test]
fn a_broadcast_reaches_every_other_member_of_the_same_room_once() {
    let mut sim = Sim::new();
    let [a, b, c] = sim.join_all("r", ["a", "b", "c"]);
    let x = sim.join("x", "elsewhere", full());
    let payload = OpaqueBytes::new(vec![0x04; 62]);
    let out = sim.send(
        a,
        ClientMessage::E2eeBroadcast(E2eeBroadcast {
            payload: payload.clone(),
        }),
    );
    let expected = ServerMessage::E2ee(E2eeFrom {
        from: pid("a"),
        payload,
    });
    for member in [b, c] {
        assert_eq!(to(&out, member), [&expected], "one copy each");
    }
    assert!(to(&out, a).is_empty(), "not back to the sender");
    assert!(to(&out, x).is_empty(), "nothing crosses rooms");

    // Over the size limit: refused before routing.
    let big = OpaqueBytes::new(vec![0; MAX_E2EE_PAYLOAD_BYTES + 1]);
    let out = sim.send(
        a,
        ClientMessage::E2eeBroadcast(E2eeBroadcast { payload: big }),
    );
    assert_refused(&out, a, ErrorCode::FieldTooLarge);
    assert!(to(&out, b).is_empty() && to(&out, c).is_empty());
}

#[test]
fn keyframe_requests_are_merged_and_rate_limited_per_track() {
    let mut sim = Sim::new();
    let [a, b, c] = sim.join_all("r", ["a", "b", "c"]);
    sim.send(a, publish(Source::Camera));
    sim.send(a, publish(Source::Microphone));
    let camera = TrackId(0);
    let request = |track| ClientMessage::KeyframeRequest(TrackRef { track });
    let asked = |track| {
        vec![Output::RequestKeyframe {
            publisher: a,
            track,
        }]
    };

    let out = sim.send(b, request(camera));
    assert_eq!(out, asked(camera));
    // Within the grace of that one: answered by it, nothing more goes out, nothing pending
    // (c's first request included: the keyframe it needs is on its way).
    assert!(sim.send(c, request(camera)).is_empty());
    sim.now = sim.now.advance(Duration::from_millis(100));
    assert!(sim.send(b, request(camera)).is_empty());
    assert_eq!(sim.relay.poll_timeout(), None);
    // After the grace, within the interval: merged.
    sim.now = sim.now.advance(Duration::from_millis(100));
    assert!(sim.send(b, request(camera)).is_empty());
    assert!(sim.send(c, request(camera)).is_empty());
    // Another track has its own gate.
    assert_eq!(sim.send(b, request(TrackId(1))), asked(TrackId(1)));

    // One merged request goes out when the interval ends, and only one.
    let due = sim.relay.poll_timeout().unwrap();
    assert_eq!(
        due,
        sim.now.instant - Duration::from_millis(200) + Duration::from_millis(500)
    );
    assert_eq!(sim.advance(Duration::from_millis(300)), asked(camera));
    assert!(sim.advance(Duration::from_secs(5)).is_empty());

    // A newcomer's first request from its media session is not held for the interval: it
    // decodes nothing until a keyframe comes. Its next ones are rate limited like everyone's.
    sim.now = sim.now.advance(Duration::from_millis(200));
    assert!(sim.send(b, request(camera)) == asked(camera));
    sim.now = sim.now.advance(Duration::from_millis(200));
    let d = sim.join("d", "r", full());
    sim.drain();
    sim.relay.request_keyframe(sim.now, d, camera);
    assert_eq!(sim.drain(), asked(camera), "first: at once");
    sim.now = sim.now.advance(Duration::from_millis(200));
    assert!(sim.send(d, request(camera)).is_empty(), "then merged");

    // Unknown tracks and one's own are refused.
    let out = sim.send(b, request(TrackId(7)));
    assert_refused(&out, b, ErrorCode::UnknownTrack);
    let out = sim.send(a, request(camera));
    assert_refused(&out, a, ErrorCode::UnknownTrack);
}

#[test]
fn negotiation_goes_to_the_media_session() {
    let mut sim = Sim::new();
    let a = sim.join("a", "r", full());
    let sdp = Sdp {
        sdp: "v=0\r\n".into(),
    };
    let out = sim.send(a, ClientMessage::Offer(sdp.clone()));
    assert_eq!(
        out,
        [Output::Media {
            conn: a,
            signal: MediaSignal::Offer(sdp)
        }]
    );
}

#[test]
fn keyframe_requests_need_the_subscribe_grant_and_a_subscription() {
    let mut sim = Sim::new();
    let [a, b] = sim.join_all("r", ["a", "b"]);
    let publisher = sim.join("p", "r", publisher_only());
    sim.send(a, publish(Source::Camera));
    let camera = TrackId(0);
    let request = ClientMessage::KeyframeRequest(TrackRef { track: camera });

    // No subscribe grant: refused with its own code, nothing reaches the publisher.
    let out = sim.send(publisher, request.clone());
    assert_refused(&out, publisher, ErrorCode::SubscribeNotAllowed);
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::RequestKeyframe { .. }))
    );
    // The media side (a PLI from a session that should not receive the track) is dropped too.
    sim.relay.request_keyframe(sim.now, publisher, camera);
    assert!(sim.drain().is_empty());

    // A subscriber that unsubscribed from the track: refused, and the gate is not used up.
    sim.send(b, ClientMessage::Unsubscribe(TrackRef { track: camera }));
    let out = sim.send(b, request.clone());
    assert_refused(&out, b, ErrorCode::NotSubscribed);
    sim.relay.request_keyframe(sim.now, b, camera);
    assert!(sim.drain().is_empty());

    // Subscribed again: the request goes through at once (the refusals took no slot).
    sim.send(b, ClientMessage::Subscribe(TrackRef { track: camera }));
    let out = sim.send(b, request);
    assert_eq!(
        out,
        [Output::RequestKeyframe {
            publisher: a,
            track: camera
        }]
    );
    assert_alive(&mut sim, publisher);
}

#[test]
fn a_newcomers_first_keyframe_request_is_not_held_behind_a_merged_one() {
    let mut sim = Sim::new();
    let [a, b] = sim.join_all("r", ["a", "b"]);
    sim.send(a, publish(Source::Camera));
    let camera = TrackId(0);
    let ms = Duration::from_millis;
    let asked = vec![Output::RequestKeyframe {
        publisher: a,
        track: camera,
    }];
    // b joined: its first request goes out, its browser's own follow within the grace and
    // one more after it, which is merged and goes out at the end of the interval.
    sim.relay.request_keyframe(sim.now, b, camera);
    assert_eq!(sim.drain(), asked);
    for step in [3, 137, 145] {
        sim.now = sim.now.advance(ms(step));
        sim.relay.request_keyframe(sim.now, b, camera);
        assert!(sim.drain().is_empty());
    }
    assert_eq!(sim.advance(ms(215)), asked);
    // c joins 235 ms later: its first request is sent at once, not at the end of the interval.
    sim.now = sim.now.advance(ms(235));
    let c = sim.join("c", "r", full());
    sim.drain();
    sim.relay.request_keyframe(sim.now, c, camera);
    assert_eq!(sim.drain(), asked);
}

#[test]
fn a_signaling_keyframe_request_does_not_use_up_the_first_media_one() {
    let mut sim = Sim::new();
    let [a, b] = sim.join_all("r", ["a", "b"]);
    sim.send(a, publish(Source::Camera));
    let camera = TrackId(0);
    let asked = vec![Output::RequestKeyframe {
        publisher: a,
        track: camera,
    }];
    // The browser asks over signaling when its keys change, before its connection is up: the
    // keyframe is lost on the way, so the media side's first request still goes at once.
    let request = ClientMessage::KeyframeRequest(TrackRef { track: camera });
    assert_eq!(sim.send(b, request), asked);
    sim.now = sim.now.advance(Duration::from_millis(200));
    sim.relay.request_keyframe(sim.now, b, camera);
    assert_eq!(sim.drain(), asked);
}

#[test]
fn a_video_size_reaches_the_subscribers_media_session_only_for_a_track_it_receives() {
    let mut sim = Sim::new();
    let [a, b] = sim.join_all("r", ["a", "b"]);
    sim.send(a, publish(Source::Camera));
    let camera = TrackId(0);
    let size = |track| {
        ClientMessage::VideoSize(hush_proto::VideoSize {
            track,
            width: 320,
            height: 180,
        })
    };
    assert_eq!(
        sim.send(b, size(camera)),
        vec![Output::VideoSize {
            subscriber: b,
            track: camera,
            width: 320,
            height: 180,
        }]
    );
    // Its own track, a track that does not exist, a track it stopped receiving: refused.
    let out = sim.send(a, size(camera));
    assert_refused(&out, a, ErrorCode::UnknownTrack);
    let out = sim.send(b, size(TrackId(9)));
    assert_refused(&out, b, ErrorCode::UnknownTrack);
    sim.send(b, ClientMessage::Unsubscribe(TrackRef { track: camera }));
    let out = sim.send(b, size(camera));
    assert_refused(&out, b, ErrorCode::NotSubscribed);
    assert!(!out.iter().any(|o| matches!(o, Output::VideoSize { .. })));
}
