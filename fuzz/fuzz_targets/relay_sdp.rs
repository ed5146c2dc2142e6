//! The relay's SDP text fixes (`hush_relay::media::sdp`) on arbitrary SDP, which clients write:
//! never a panic; setting the role is idempotent and is what `answer_setup` then reads (when the
//! text had a role line to set); a client's answer gives the opposite of its own role; the first
//! mid never holds a line break.
#![no_main]

use hush_relay::media::sdp::{Setup, answer_setup, first_mid, role_from_client_answer, with_setup};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(sdp) = std::str::from_utf8(data) else {
        return;
    };
    let _ = role_from_client_answer(sdp);
    if let Some(mid) = first_mid(sdp) {
        assert!(!mid.contains('\n'), "{mid:?}");
    }
    for role in [Setup::Active, Setup::Passive] {
        let once = with_setup(sdp, role);
        assert_eq!(with_setup(&once, role), once, "idempotent");
        if answer_setup(sdp).is_some() {
            assert_eq!(answer_setup(&once), Some(role));
        }
    }
    if let Some(theirs) = answer_setup(sdp) {
        assert_ne!(role_from_client_answer(sdp), Some(theirs));
    }
});
