//! `cargo bench -p hush-keys`: the cost of one leave in rooms of 10, 50 and 200 members.
//!
//! Prints, per room size, the envelopes and bytes one leave costs and the simulated time until
//! every member sends on the new epoch with a 50 ms one-way relay delay; criterion measures the
//! committer's CPU time for the leave (drawing the secret, N-1 HPKE seals, installing keys).
// Bench harness: a failed unwrap is a broken bench.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;

use common::{Net, NetConfig};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use hush_keys::{
    Change, Config, IdentityKeyPair, Input, Instant, Member, MembershipEvent, ParticipantId,
    RoomId, SenderIndex, Session,
};

const SIZES: [usize; 3] = [10, 50, 200];

fn simulated_leave(n: usize) {
    let cfg = NetConfig {
        event_delay: (50, 50),
        msg_delay: (50, 50),
        dup_per_mille: 0,
        ..NetConfig::default()
    };
    let mut net = Net::new(1, cfg);
    for _ in 0..n {
        net.join();
        let t = net.now + 20;
        net.run_until(t);
    }
    net.run_until_settled(60_000).expect("room settles");
    let before = net.stats.clone();
    let present = net.present();
    net.leave(present[present.len() / 2], false, false);
    let took = net.run_until_settled(10_000).expect("leave settles");
    let s = &net.stats;
    println!(
        "room {n:>3}: one leave = {} envelopes, {} envelope bytes, {} other key-message deliveries: acks, switch notices, safety-code commits and reveals ({} bytes); every member sends on the new epoch after {took} ms (50 ms one-way)",
        s.envelopes - before.envelopes,
        s.envelope_bytes - before.envelope_bytes,
        s.control_msgs - before.control_msgs,
        s.control_bytes - before.control_bytes,
    );
}

/// A committer session in a room of `n` members (itself the first), ready for a leave.
fn committer(n: usize) -> Session<common::TestRng> {
    let mut r = common::rng(n as u64);
    let room = RoomId::new("bench").unwrap();
    let id = IdentityKeyPair::generate(&mut r);
    let me = Member {
        participant: ParticipantId::new("m0").unwrap(),
        sender_index: SenderIndex::new(1).unwrap(),
        join_seq: 1,
        identity: *id.public(),
        attestation: None,
        role: hush_keys::Role::Participant,
    };
    let mut cfg = Config::new(room);
    cfg.contexts = 4;
    let mut s = Session::new(cfg, id, me.participant.clone(), common::rng(7));
    let now = Instant::from_millis(0);
    s.handle_input(
        now,
        Input::Joined {
            seq: 1,
            members: vec![me],
        },
    )
    .unwrap();
    for i in 1..n {
        let k = IdentityKeyPair::generate(&mut r);
        let m = Member {
            participant: ParticipantId::new(format!("m{i}")).unwrap(),
            sender_index: SenderIndex::new(i as u32 + 1).unwrap(),
            join_seq: i as u64 + 1,
            identity: *k.public(),
            attestation: None,
            role: hush_keys::Role::Participant,
        };
        let ev = MembershipEvent {
            seq: i as u64 + 1,
            change: Change::Join(m),
        };
        s.handle_input(now, Input::Membership(ev)).unwrap();
    }
    while s.poll_output().is_some() {}
    s
}

fn bench(c: &mut Criterion) {
    for n in SIZES {
        simulated_leave(n);
    }
    let mut g = c.benchmark_group("committer_one_leave");
    g.sample_size(10);
    for n in SIZES {
        g.bench_function(format!("{n}_members"), |b| {
            b.iter_batched(
                || committer(n),
                |mut s| {
                    let ev = MembershipEvent {
                        seq: n as u64 + 1,
                        change: Change::Leave(ParticipantId::new(format!("m{}", n / 2)).unwrap()),
                    };
                    s.handle_input(Instant::from_millis(1), Input::Membership(ev))
                        .unwrap();
                    let mut outs = 0;
                    while let Some(o) = s.poll_output() {
                        black_box(&o);
                        outs += 1;
                    }
                    black_box(outs);
                    s
                },
                BatchSize::LargeInput,
            );
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
