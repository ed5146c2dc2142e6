//! The relay's log and audit trail: the log on stderr, filtered by `RUST_LOG` with the
//! WebSocket stack never at trace, and the audit lines on their own writer.

use std::io::Write;
use std::path::Path;

use clap::ValueEnum;
use hush_relay::ops::audit::{AUDIT_TARGET, AuditWriter};
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::FilterExt as _;
use tracing_subscriber::layer::Filter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// How the log is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Log targets held at debug at most: their trace lines hold whole signaling frames.
const NEVER_TRACED: [&str; 3] = ["tungstenite", "tokio_tungstenite", "axum::extract::ws"];

/// What `RUST_LOG` is when it is unset or does not parse.
const DEFAULT_LOG: &str = "info,webrtc=warn,rtc=warn";

/// The log's filter: `rust_log` (else [`DEFAULT_LOG`]) without the audit target, and the
/// [`NEVER_TRACED`] targets never at trace level, whatever `rust_log` says (the WebSocket
/// stack logs whole frames there, and signaling frames carry access tokens, identity keys and
/// envelopes: crates/hush-client/tests/secrets.rs found them).
///
/// The cap is a filter of its own, not `target=debug` directives: such a directive would raise
/// the filter's most verbose level to debug, and that level is what the `log` crate is told
/// (tracing-subscriber's `try_init`). webrtc-rs logs through `log`, several debug records per
/// packet, each of which then went through the tracing bridge and this filter's directive
/// matching only to be dropped: 3 % of the relay's CPU under load (perf).
fn log_filter<S>(rust_log: Option<&str>) -> Result<impl Filter<S> + use<S>, String>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let env = rust_log
        .and_then(|s| tracing_subscriber::EnvFilter::try_new(s).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(DEFAULT_LOG))
        // Audit lines have their own writer; the log does not repeat them.
        .add_directive(
            format!("{AUDIT_TARGET}=off")
                .parse()
                .map_err(|e| format!("log filter: {e}"))?,
        );
    let cap = tracing_subscriber::filter::filter_fn(|meta| {
        *meta.level() != tracing::Level::TRACE
            || !NEVER_TRACED.iter().any(|t| {
                meta.target()
                    .strip_prefix(t)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
            })
    })
    .with_max_level_hint(tracing::level_filters::LevelFilter::TRACE);
    Ok(env.and(cap))
}

/// The log on stderr (text or JSON, `RUST_LOG` filtered, without audit lines) and the audit
/// trail as bare JSON lines on stdout or appended to `audit_file`.
pub(crate) fn init_logging(format: LogFormat, audit_file: Option<&Path>) -> Result<(), String> {
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = log_filter(rust_log.as_deref())?;
    let log = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let log = match format {
        LogFormat::Text => log.boxed(),
        LogFormat::Json => log.json().boxed(),
    };
    let audit_out: Box<dyn Write + Send> = match audit_file {
        Some(path) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open the audit file {}: {e}", path.display()))?,
        ),
        None => Box::new(std::io::stdout()),
    };
    let audit = AuditWriter::new(audit_out).with_filter(
        tracing_subscriber::filter::Targets::new().with_target(AUDIT_TARGET, tracing::Level::INFO),
    );
    tracing_subscriber::registry()
        .with(log.with_filter(filter))
        .with(audit)
        .try_init()
        .map_err(|e| format!("logging: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::level_filters::LevelFilter;
    use tracing_subscriber::Registry;

    fn hint(rust_log: Option<&str>) -> Option<LevelFilter> {
        let filter = log_filter::<Registry>(rust_log).expect("filter");
        Filter::<Registry>::max_level_hint(&filter)
    }

    #[test]
    fn the_default_filter_tells_log_info_so_webrtc_debug_records_stop_at_log() {
        // Before: the NEVER_TRACED caps were `=debug` directives and this was DEBUG.
        assert_eq!(hint(None), Some(LevelFilter::INFO));
        assert_eq!(hint(Some("not a [filter")), Some(LevelFilter::INFO));
        assert_eq!(hint(Some("warn")), Some(LevelFilter::WARN));
        assert_eq!(hint(Some("trace")), Some(LevelFilter::TRACE));
    }
}
