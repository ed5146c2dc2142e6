//! hush-keys as a room: up to six sessions behind a relay the fuzzer schedules (joins, leaves,
//! removals, rekeys, delivery order and loss, time, local streams), plus forged, replayed and
//! tampered key messages and membership events of a lying relay. After every step the
//! invariants of `hush_fuzz::room` are checked (one key per KID, one send key per running
//! stream on the sending epoch, `sending_epoch <= latest_epoch`, nothing held after removal,
//! and receive keys equal to their sender's send keys while the relay is honest).
#![no_main]

use arbitrary::Arbitrary;
use hush_fuzz::room::{Op, Room};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Run {
    shared_secret_mode: bool,
    ops: Vec<Op>,
}

fuzz_target!(|run: Run| {
    let mut room = Room::new(run.shared_secret_mode);
    for op in run.ops.into_iter().take(256) {
        room.step(op);
    }
    // Whatever happened, an honest relay delivering everything leaves the invariants intact.
    room.step(Op::Settle);
    room.step(Op::TickToNext);
    room.step(Op::Settle);
});
