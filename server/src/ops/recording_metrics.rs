//! The recording metrics (`hush_recording*`): how many recordings run, what they wrote, what
//! they lost and why they ended. Counts only: no room or participant labels.

use hush_proto::RecordingEnd;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::metrics::Metrics;

type Labels = [(&'static str, &'static str); 1];

/// The recording metrics, registered with the relay's others.
#[derive(Debug, Default)]
pub(crate) struct RecordingMetrics {
    active: Gauge,
    started: Counter,
    frames: Counter,
    bytes: Counter,
    dropped: Family<Labels, Counter>,
    failures: Family<Labels, Counter>,
}

impl RecordingMetrics {
    pub(super) fn register(&self, r: &mut Registry) {
        r.register(
            "recordings_active",
            "Encrypted recordings being written now",
            self.active.clone(),
        );
        r.register(
            "recordings",
            "Encrypted recordings started",
            self.started.clone(),
        );
        r.register(
            "recording_frames",
            "Encrypted frames written to recordings",
            self.frames.clone(),
        );
        r.register(
            "recording_bytes",
            "Bytes written to recordings' track files",
            self.bytes.clone(),
        );
        r.register(
            "recording_dropped",
            "Frames or events not recorded, by reason",
            self.dropped.clone(),
        );
        r.register(
            "recording_failures",
            "Recordings the relay had to stop, by reason",
            self.failures.clone(),
        );
    }
}

impl Metrics {
    /// A recording started.
    pub fn recording_started(&self) {
        self.recording.started.inc();
        self.recording.active.inc();
    }

    /// A recording's writer closed it.
    pub fn recording_closed(&self) {
        self.recording.active.dec();
    }

    /// A frame of `bytes` bytes written.
    pub fn recording_frame(&self, bytes: u64) {
        self.recording.frames.inc();
        self.recording.bytes.inc_by(bytes);
    }

    /// `n` frames (or events) not recorded, for `reason`.
    pub fn recording_dropped(&self, reason: &'static str, n: u64) {
        self.recording
            .dropped
            .get_or_create(&[("reason", reason)])
            .inc_by(n);
    }

    /// The relay stopped a recording: it could not write (or hit a limit).
    pub fn recording_failed(&self, end: RecordingEnd) {
        self.recording
            .failures
            .get_or_create(&[("reason", end.as_str())])
            .inc();
    }
}
