//! Small SDP text fixes webrtc-rs 0.21 needs to talk to browsers.
//!
//! - **DTLS role across renegotiations.** webrtc-rs answers every offer with its configured
//!   answering role (`a=setup:active`), even when the transport already runs with the relay as
//!   the DTLS server (the relay offered first and the client answered `active`). RFC 8842
//!   section 5.5 forbids changing the role on a live transport and Chromium refuses such an
//!   answer ("Failed to set SSL role"). The relay remembers its role from the first exchange and
//!   writes it into every later answer. webrtc-rs starts its transports only on the first
//!   exchange, so the rewritten line changes nothing inside it; it only tells the truth.
//! - **Candidate mid.** webrtc-rs reports an empty `sdpMid` for its candidates; with BUNDLE the
//!   first m-section's mid names the one transport.

/// The relay's DTLS role on a transport, as an `a=setup` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setup {
    /// The DTLS client.
    Active,
    /// The DTLS server.
    Passive,
}

impl Setup {
    fn as_str(self) -> &'static str {
        match self {
            Setup::Active => "active",
            Setup::Passive => "passive",
        }
    }

    fn opposite(self) -> Self {
        match self {
            Setup::Active => Setup::Passive,
            Setup::Passive => Setup::Active,
        }
    }
}

/// The first `a=setup:active|passive` of `sdp` (an answer; `actpass` gives `None`).
pub fn answer_setup(sdp: &str) -> Option<Setup> {
    sdp.lines()
        .find_map(|line| line.trim_end().strip_prefix("a=setup:"))
        .and_then(|value| match value {
            "active" => Some(Setup::Active),
            "passive" => Some(Setup::Passive),
            _ => None,
        })
}

/// Our role once the client answered our offer with `sdp`: the opposite of the client's.
pub fn role_from_client_answer(sdp: &str) -> Option<Setup> {
    answer_setup(sdp).map(Setup::opposite)
}

/// `answer` with every `a=setup:active|passive` line set to `role`. Line endings are kept.
pub fn with_setup(answer: &str, role: Setup) -> String {
    let mut out = String::with_capacity(answer.len());
    for line in answer.split_inclusive('\n') {
        // Trimmed as `answer_setup` reads it, so what one sets the other reads.
        let body = line.trim_end();
        match body.strip_prefix("a=setup:") {
            Some("active" | "passive") => {
                out.push_str("a=setup:");
                out.push_str(role.as_str());
                out.push_str(&line[body.len()..]);
            }
            _ => out.push_str(line),
        }
    }
    out
}

/// The mid of the first m-section of `sdp`, if it names one.
pub fn first_mid(sdp: &str) -> Option<String> {
    let mut in_media = false;
    for line in sdp.lines() {
        if line.starts_with("m=") {
            if in_media {
                return None; // the first m-section had no mid
            }
            in_media = true;
        } else if in_media && let Some(mid) = line.trim_end().strip_prefix("a=mid:") {
            return Some(mid.to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
        a=group:BUNDLE 0 1\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=setup:active\r\na=mid:0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=setup:active\r\na=mid:1\r\n";

    #[test]
    fn keeps_the_established_role_on_every_section() {
        let fixed = with_setup(ANSWER, Setup::Passive);
        assert_eq!(fixed.matches("a=setup:passive\r\n").count(), 2);
        assert!(!fixed.contains("a=setup:active"));
        assert_eq!(fixed.len(), ANSWER.len() + 2, "only the two values changed");
        assert_eq!(answer_setup(&fixed), Some(Setup::Passive));
    }

    #[test]
    fn leaves_an_answer_with_the_right_role_alone() {
        assert_eq!(with_setup(ANSWER, Setup::Active), ANSWER);
        let lf = ANSWER.replace("\r\n", "\n");
        assert_eq!(with_setup(&lf, Setup::Active), lf);
        assert_eq!(
            with_setup(&lf, Setup::Passive)
                .matches("a=setup:passive\n")
                .count(),
            2
        );
    }

    #[test]
    fn the_clients_answer_gives_the_opposite_role() {
        assert_eq!(role_from_client_answer(ANSWER), Some(Setup::Passive));
        let passive = ANSWER.replace("active", "passive");
        assert_eq!(role_from_client_answer(&passive), Some(Setup::Active));
    }

    #[test]
    fn actpass_or_no_setup_is_no_role() {
        assert_eq!(answer_setup(&ANSWER.replace("active", "actpass")), None);
        assert_eq!(answer_setup("v=0\r\n"), None);
        assert_eq!(answer_setup("a=setup:holdconn\r\n"), None);
    }

    #[test]
    fn a_role_line_with_trailing_blanks_is_rewritten_as_it_is_read() {
        let sdp = "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=setup:active \t\r\n";
        assert_eq!(answer_setup(sdp), Some(Setup::Active));
        let fixed = with_setup(sdp, Setup::Passive);
        assert_eq!(answer_setup(&fixed), Some(Setup::Passive), "{fixed:?}");
        assert!(fixed.ends_with(" \t\r\n"));
    }

    #[test]
    fn first_mid_is_the_first_sections() {
        assert_eq!(first_mid(ANSWER).as_deref(), Some("0"));
        assert_eq!(
            first_mid("v=0\r\nm=video 9 X 96\r\nm=audio 9 X 111\r\na=mid:1\r\n"),
            None
        );
        assert_eq!(first_mid("v=0\r\n"), None);
    }
}
