//! Signaling decode on arbitrary text, both directions: `ClientMessage::decode` (what the relay
//! parses from every WebSocket) and `ServerMessage::decode` (what every client parses from the
//! relay), and `ServerMessage::decode_key_event` (the Worker's slim decoder), which must accept
//! exactly the key events the full decoder accepts, as the same messages. Decoding never panics; what decodes re-encodes to the same message; a refusal's
//! client-facing text stays within its limit.
#![no_main]

use core::fmt::Debug;

use hush_proto::limits::MAX_ERROR_MESSAGE_BYTES;
use hush_proto::{ClientMessage, DecodeError, MAX_MESSAGE_BYTES, ServerMessage};
use libfuzzer_sys::fuzz_target;

fn refusal(e: &DecodeError) {
    let _ = e.code();
    assert!(e.client_message().len() <= MAX_ERROR_MESSAGE_BYTES);
}

/// What decoded re-encodes to the same message (when that fits in a message); a refusal is
/// checked by [`refusal`]. The same for both directions, given their functions.
fn round_trip<M: PartialEq + Debug>(
    decoded: Result<M, DecodeError>,
    decode: fn(&str) -> Result<M, DecodeError>,
    encode: fn(&M) -> String,
    type_name: fn(&M) -> &'static str,
) {
    match decoded {
        Ok(msg) => {
            let _ = type_name(&msg);
            let again = encode(&msg);
            if again.len() <= MAX_MESSAGE_BYTES {
                assert_eq!(decode(&again).as_ref(), Ok(&msg), "{again}");
            }
        }
        Err(e) => refusal(&e),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    round_trip(
        ClientMessage::decode(text),
        ClientMessage::decode,
        ClientMessage::encode,
        ClientMessage::type_name,
    );
    let full = ServerMessage::decode(text);
    match ServerMessage::decode_key_event(text) {
        Ok(msg) => assert_eq!(full.as_ref(), Ok(&msg), "{text}"),
        Err(e) => {
            refusal(&e);
            let key_event = matches!(
                full,
                Ok(ServerMessage::Joined(_)
                    | ServerMessage::ParticipantJoined(_)
                    | ServerMessage::ParticipantLeft(_)
                    | ServerMessage::Rekey(_)
                    | ServerMessage::E2ee(_))
            );
            assert!(!key_event, "the full decoder took a key event the slim one refused: {text}");
        }
    }
    round_trip(
        full,
        ServerMessage::decode,
        ServerMessage::encode,
        ServerMessage::type_name,
    );
});
