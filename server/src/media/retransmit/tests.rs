use std::time::Duration;

use rtc::interceptor::RTCPFeedback;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::NackPair;

use super::*;

const SSRC: u32 = 0x1111;
const RTX_SSRC: u32 = 0x2222;
/// 1 Mbit/s: a 200 kbit/s budget, a 50 kbit bucket (it starts full).
const ESTIMATE: f64 = 1_000_000.0;

fn packet(seq: u16, payload: &[u8]) -> rtp::Packet {
    rtp::Packet {
        header: rtp::header::Header {
            version: 2,
            ssrc: SSRC,
            payload_type: 96,
            sequence_number: seq,
            timestamp: u32::from(seq) * 3000,
            marker: seq.is_multiple_of(2),
            ..Default::default()
        },
        payload: payload.to_vec().into(),
    }
}

fn tagged(now: Instant, packet: Packet) -> TaggedPacket {
    TaggedPacket {
        now,
        transport: TransportContext::default(),
        message: AttributedPacket::new(packet),
    }
}

fn retransmitter(rtx: bool) -> (Retransmitter, Arc<AtomicU64>) {
    let refused = Arc::new(AtomicU64::new(0));
    let estimate = Arc::new(AtomicU64::new(ESTIMATE.to_bits()));
    let mut r = Retransmitter::new(estimate, Arc::clone(&refused));
    r.bind_local_stream(&StreamInfo {
        ssrc: SSRC,
        ssrc_rtx: rtx.then_some(RTX_SSRC),
        payload_type_rtx: rtx.then_some(97),
        rtcp_feedback: vec![RTCPFeedback {
            typ: "nack".into(),
            parameter: String::new(),
        }],
        ..Default::default()
    });
    (r, refused)
}

/// Sends `seqs` at `now`; returns what reached the wire side.
fn send(r: &mut Retransmitter, now: Instant, seqs: impl IntoIterator<Item = u16>) -> usize {
    for seq in seqs {
        r.handle_write(tagged(now, Packet::Rtp(packet(seq, &[seq as u8; 100]))))
            .unwrap();
    }
    std::iter::from_fn(|| r.poll_write()).count()
}

/// A NACK for `seqs` (as pairs of up to 17) arrives at `now`; returns the resends.
fn nack(r: &mut Retransmitter, now: Instant, ssrc: u32, seqs: &[u16]) -> Vec<TaggedPacket> {
    let nacks = seqs
        .iter()
        .map(|&s| NackPair {
            packet_id: s,
            lost_packets: 0,
        })
        .collect();
    let rtcp = TransportLayerNack {
        sender_ssrc: 1,
        media_ssrc: ssrc,
        nacks,
    };
    r.handle_read(tagged(now, Packet::Rtcp(vec![Box::new(rtcp)])))
        .unwrap();
    // The NACK itself goes on towards the application.
    assert!(r.poll_read().is_some());
    std::iter::from_fn(|| r.poll_write()).collect()
}

fn rtp_of(p: &TaggedPacket) -> &rtp::Packet {
    match &p.message.packet {
        Packet::Rtp(rtp) => rtp,
        _ => panic!("not RTP"),
    }
}

#[test]
fn a_nacked_packet_is_sent_again_as_it_was_and_tagged() {
    let t0 = Instant::now();
    let (mut r, refused) = retransmitter(false);
    assert_eq!(send(&mut r, t0, 10..20), 10, "everything passes through");
    let resent = nack(&mut r, t0 + Duration::from_millis(50), SSRC, &[12, 15]);
    assert_eq!(resent.len(), 2);
    for (p, seq) in resent.iter().zip([12u16, 15]) {
        assert_eq!(rtp_of(p), &packet(seq, &[seq as u8; 100]));
        assert!(
            p.message
                .attributes
                .iter()
                .any(|a| matches!(a, Attribute::Retransmission))
        );
    }
    assert_eq!(refused.load(Ordering::Relaxed), 0);
}

#[test]
fn with_rtx_the_resend_carries_the_original_sequence_number_on_the_rtx_stream() {
    let t0 = Instant::now();
    let (mut r, _) = retransmitter(true);
    send(&mut r, t0, [7, 8, 9]);
    let resent = nack(&mut r, t0, SSRC, &[8, 9]);
    let (a, b) = (rtp_of(&resent[0]), rtp_of(&resent[1]));
    assert_eq!((a.header.ssrc, a.header.payload_type), (RTX_SSRC, 97));
    assert_eq!((a.header.sequence_number, b.header.sequence_number), (0, 1));
    assert_eq!(a.header.timestamp, packet(8, &[]).header.timestamp);
    assert_eq!(&a.payload[..2], &8u16.to_be_bytes());
    assert_eq!(&a.payload[2..], &[8u8; 100]);
}

#[test]
fn a_packet_older_than_the_history_or_never_sent_is_not_resent() {
    let t0 = Instant::now();
    let (mut r, refused) = retransmitter(false);
    send(&mut r, t0, 0..5);
    let later = t0 + HISTORY_MIN + Duration::from_millis(1);
    send(&mut r, later, 5..6);
    assert!(nack(&mut r, later, SSRC, &[1, 2]).is_empty(), "too old");
    assert!(
        nack(&mut r, later, SSRC, &[6, 300]).is_empty(),
        "never sent"
    );
    assert!(nack(&mut r, later, 0x9999, &[5]).is_empty(), "another SSRC");
    assert_eq!(nack(&mut r, later, SSRC, &[5]).len(), 1);
    assert_eq!(
        refused.load(Ordering::Relaxed),
        0,
        "nothing refused: absent"
    );
}

#[test]
fn the_history_is_bounded_by_age_and_by_count() {
    let t0 = Instant::now();
    let mut h = History::default();
    // 30 packets a second for a minute: two seconds' worth are held.
    for i in 0..1_800u16 {
        h.push(
            t0 + Duration::from_millis(u64::from(i) * 1000 / 30),
            &packet(i, &[0; 1000]),
            HISTORY_MAX,
        );
    }
    assert!((60..=62).contains(&h.len()), "{}", h.len());
    // 10,000 packets at one instant: the count bound.
    let mut h = History::default();
    for i in 0..10_000u16 {
        h.push(t0, &packet(i, &[]), HISTORY_MAX);
    }
    assert_eq!(h.len(), HISTORY_PACKETS);
    let first = 10_000 - HISTORY_PACKETS as u16;
    assert!(h.get(t0, first - 1, HISTORY_MAX).is_none());
    assert!(h.get(t0, first, HISTORY_MAX).is_some());
}

#[test]
fn lookups_work_across_gaps_and_the_sequence_wrap_and_keep_the_first_copy() {
    let t0 = Instant::now();
    let mut h = History::default();
    // 65,530..65,535, then a gap (packets dropped before this leg), then 3..9 past the wrap.
    for seq in (65_530..=65_535).chain(3..10) {
        h.push(t0, &packet(seq, &[1]), HISTORY_MAX);
    }
    // A resend or a late packet is not stored over the first copy.
    h.push(t0, &packet(4, &[2]), HISTORY_MAX);
    h.push(t0, &packet(65_531, &[2]), HISTORY_MAX);
    for seq in (65_530..=65_535).chain(3..10) {
        let got = h
            .get(t0, seq, HISTORY_MAX)
            .map(|p| (p.header.sequence_number, p.payload[0]));
        assert_eq!(got, Some((seq, 1)), "{seq}");
    }
    for seq in [0, 1, 2, 10, 65_529] {
        assert!(h.get(t0, seq, HISTORY_MAX).is_none(), "{seq}");
    }
}

#[test]
fn resends_beyond_the_budget_are_refused_and_counted() {
    let t0 = Instant::now();
    let (mut r, refused) = retransmitter(false);
    let big = |seq: u16| packet(seq, &[0; 1200]);
    for seq in 0..100 {
        r.handle_write(tagged(t0, Packet::Rtp(big(seq)))).unwrap();
    }
    while r.poll_write().is_some() {}
    // A 50 kbit bucket holds five 1,212-byte packets (9,696 bits each).
    let all: Vec<u16> = (0..100).collect();
    let resent = nack(&mut r, t0, SSRC, &all);
    assert_eq!(resent.len(), 5);
    assert_eq!(refused.load(Ordering::Relaxed), 95);
    // 100 ms later the bucket has 20 kbit more: two.
    let resent = nack(&mut r, t0 + Duration::from_millis(100), SSRC, &all);
    assert_eq!(resent.len(), 2);
}

#[test]
fn a_stream_without_nack_keeps_no_history() {
    let t0 = Instant::now();
    let refused = Arc::new(AtomicU64::new(0));
    let mut r = Retransmitter::new(Arc::default(), refused);
    r.bind_local_stream(&StreamInfo {
        ssrc: SSRC,
        ..Default::default()
    });
    send(&mut r, t0, 0..10);
    assert!(nack(&mut r, t0, SSRC, &[3]).is_empty());
    assert!(r.streams.is_empty());
}

#[test]
fn the_budget_is_a_share_of_the_estimate_with_a_floor() {
    let t0 = Instant::now();
    let mut budget = Budget::new();
    // 1 Mbit/s estimate: 200 kbit/s for resends, a 50 kbit bucket (starts full).
    assert!(budget.take(40_000.0, 1_000_000.0, t0));
    assert!(!budget.take(40_000.0, 1_000_000.0, t0));
    // 100 ms later: 20 kbit more.
    let t1 = t0 + Duration::from_millis(100);
    assert!(budget.take(25_000.0, 1_000_000.0, t1));
    // A collapsed estimate still allows the floor: 30 kbit/s.
    let t2 = t1 + Duration::from_secs(1);
    assert!(budget.take(7_000.0, 0.0, t2));
    assert!(!budget.take(7_000.0, 0.0, t2));
}

/// A sender report of ours for `SSRC` with NTP time `ntp` leaves at `at`.
fn report_sent(r: &mut Retransmitter, at: Instant, ntp: u64) {
    report_sent_for(r, SSRC, at, ntp);
}

/// A sender report of ours for `ssrc` with NTP time `ntp` leaves at `at`.
fn report_sent_for(r: &mut Retransmitter, ssrc: u32, at: Instant, ntp: u64) {
    let sr = SenderReport {
        ssrc,
        ntp_time: ntp,
        ..Default::default()
    };
    r.handle_write(tagged(at, Packet::Rtcp(vec![Box::new(sr)])))
        .unwrap();
    assert!(r.poll_write().is_some(), "the report goes on to the wire");
}

/// A receiver report block for `ssrc` naming `lsr`, held `held` by the subscriber, arrives at `at`.
fn report_received(r: &mut Retransmitter, at: Instant, ssrc: u32, lsr: u32, held: Duration) {
    let rr = ReceiverReport {
        ssrc: 9,
        reports: vec![ReceptionReport {
            ssrc,
            last_sender_report: lsr,
            delay: (held.as_secs_f64() * 65_536.0) as u32,
            ..Default::default()
        }],
        ..Default::default()
    };
    r.handle_read(tagged(at, Packet::Rtcp(vec![Box::new(rr)])))
        .unwrap();
    assert!(
        r.poll_read().is_some(),
        "the report goes on to the application"
    );
}

/// NTP time whose middle 32 bits are `lsr`.
fn ntp_of(lsr: u32) -> u64 {
    u64::from(lsr) << 16
}

#[test]
fn the_round_trip_is_read_from_a_reception_report_answering_our_sender_report() {
    let t0 = Instant::now();
    let (mut r, _) = retransmitter(false);
    assert_eq!(r.rtt(), None);
    assert_eq!(r.keep(), HISTORY_MIN, "unknown: libwebrtc's floor");
    report_sent(&mut r, t0, ntp_of(0xAAAA_0001));
    report_sent(&mut r, t0 + Duration::from_millis(100), ntp_of(0xAAAA_0002));
    // Answers the first report: arrived 900 ms after it, held 300 ms by the subscriber.
    report_received(
        &mut r,
        t0 + Duration::from_millis(900),
        SSRC,
        0xAAAA_0001,
        Duration::from_millis(300),
    );
    let rtt = r.rtt().expect("measured");
    assert!(
        rtt.abs_diff(Duration::from_millis(600)) < Duration::from_millis(1),
        "{rtt:?}"
    );
    assert!(r.keep().abs_diff(Duration::from_millis(1_800)) < Duration::from_millis(3));
}

#[test]
fn reports_that_answer_nothing_of_ours_leave_the_round_trip_unknown() {
    let t0 = Instant::now();
    let (mut r, _) = retransmitter(false);
    report_sent(&mut r, t0, ntp_of(0xAAAA_0001));
    let later = t0 + Duration::from_millis(500);
    // No sender report received yet (LSR 0), a report we never sent, another SSRC, and a
    // delay longer than the time since our report (a lie or a clock fault): all ignored.
    report_received(&mut r, later, SSRC, 0, Duration::ZERO);
    report_received(&mut r, later, SSRC, 0xBBBB_0001, Duration::ZERO);
    report_received(&mut r, later, 0x9999, 0xAAAA_0001, Duration::ZERO);
    report_received(&mut r, later, SSRC, 0xAAAA_0001, Duration::from_secs(1));
    assert_eq!(r.rtt(), None);
    assert_eq!(r.keep(), HISTORY_MIN);
}

#[test]
fn the_history_keeps_three_round_trips_within_its_bounds() {
    let t0 = Instant::now();
    let cases = [
        (Duration::from_millis(20), HISTORY_MIN),
        (Duration::from_millis(500), Duration::from_millis(1_500)),
        (Duration::from_secs(3), HISTORY_MAX),
    ];
    for (rtt, keep) in cases {
        let (mut r, _) = retransmitter(false);
        report_sent(&mut r, t0, ntp_of(7 << 16));
        report_received(&mut r, t0 + rtt, SSRC, 7 << 16, Duration::ZERO);
        let kept = r.keep();
        assert!(
            kept.abs_diff(keep) < Duration::from_millis(3),
            "{rtt:?}: {kept:?}"
        );
        // A packet sent now is answered just inside that window, not just outside it.
        let sent = t0 + rtt;
        send(&mut r, sent, [40]);
        let inside = sent + keep - Duration::from_millis(5);
        assert_eq!(nack(&mut r, inside, SSRC, &[40]).len(), 1, "{rtt:?}");
        let outside = sent + keep + Duration::from_millis(5);
        assert!(nack(&mut r, outside, SSRC, &[40]).is_empty(), "{rtt:?}");
    }
}

#[test]
fn many_streams_reporting_do_not_crowd_out_the_report_a_block_answers() {
    // A subscriber of a large room: 60 NACK streams on the leg, each with its own sender
    // reports (its own NTP times), all sent in one round before the browser answers the first.
    let t0 = Instant::now();
    let (mut r, _) = retransmitter(false);
    let ssrcs: Vec<u32> = (0..60).map(|i| 0x5000 + i).collect();
    for &ssrc in &ssrcs {
        r.bind_local_stream(&StreamInfo {
            ssrc,
            rtcp_feedback: vec![RTCPFeedback {
                typ: "nack".into(),
                parameter: String::new(),
            }],
            ..Default::default()
        });
    }
    for (i, &ssrc) in ssrcs.iter().enumerate() {
        report_sent_for(&mut r, ssrc, t0, ntp_of(0x1000 + i as u32));
    }
    // A stream without NACK (audio, say) has no reports remembered: its blocks time nothing.
    report_sent_for(&mut r, 0x9999, t0, ntp_of(0xCCCC));
    report_received(
        &mut r,
        t0 + Duration::from_millis(400),
        0x9999,
        0xCCCC,
        Duration::ZERO,
    );
    assert_eq!(r.rtt(), None);
    report_received(
        &mut r,
        t0 + Duration::from_millis(400),
        ssrcs[0],
        0x1000,
        Duration::from_millis(100),
    );
    let rtt = r
        .rtt()
        .expect("the first stream's report is still remembered");
    assert!(
        rtt.abs_diff(Duration::from_millis(300)) < Duration::from_millis(1),
        "{rtt:?}"
    );
}

#[test]
fn a_stream_remembers_its_last_few_reports_only() {
    let t0 = Instant::now();
    let (mut r, _) = retransmitter(false);
    for i in 0..6u32 {
        report_sent(
            &mut r,
            t0 + Duration::from_secs(u64::from(i)),
            ntp_of(0x2000 + i),
        );
    }
    let at = t0 + Duration::from_secs(6);
    // The first two were forgotten (four kept): a block naming one times nothing.
    report_received(&mut r, at, SSRC, 0x2001, Duration::ZERO);
    assert_eq!(r.rtt(), None);
    report_received(&mut r, at, SSRC, 0x2002, Duration::from_millis(3_900));
    let rtt = r.rtt().expect("the third is remembered");
    assert!(
        rtt.abs_diff(Duration::from_millis(100)) < Duration::from_millis(1),
        "{rtt:?}"
    );
}
