//! hush-keys key messages (envelopes, acks, switch notices) from arbitrary bytes, as
//! `Input::MessageFrom` into the members of a joined two-member room (and a third joining) (committer and members,
//! exchange or shared-secret mode), with a relay-named sender of the fuzzer's choosing; also
//! `envelope::peek_header` and `envelope::open` on the bytes directly. Genuine messages of the
//! room, replayed or with one byte changed, take the fuzzer past the parsers to the checks
//! behind them. The room's invariants (`hush_fuzz::room`) hold after every message.
#![no_main]

use arbitrary::Arbitrary;
use hush_fuzz::room::{Attack, Op, settled_room};
use hush_fuzz::{identity, public_identity};
use hush_keys::envelope;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Msg {
    /// A forged (its bytes also go to the parsers directly), replayed or tampered message.
    Attack(Attack),
    /// Lets queued genuine traffic through between attacks.
    Deliver {
        k: u8,
        i: u8,
    },
    Rekey,
}

#[derive(Arbitrary, Debug)]
struct Run {
    shared_secret_mode: bool,
    /// Leave the last join's envelopes undelivered, so a member waits for one.
    pending_join: bool,
    msgs: Vec<Msg>,
}

fuzz_target!(|run: Run| {
    let mut room = settled_room(2, run.shared_secret_mode);
    if run.pending_join {
        room.step(Op::Join);
    }
    for msg in run.msgs.into_iter().take(64) {
        let op = match msg {
            Msg::Attack(a) => {
                if let Attack::Forge { k, from, bytes } = &a {
                    let _ = envelope::peek_header(bytes);
                    let me = identity(k % 3);
                    let sender = public_identity(from % 3);
                    let _ = envelope::open(room.room.as_bytes(), bytes, &me, &sender);
                }
                Op::Attack(a)
            }
            Msg::Deliver { k, i } => Op::Deliver { k, i },
            Msg::Rekey => Op::Rekey,
        };
        room.step(op);
    }
});
