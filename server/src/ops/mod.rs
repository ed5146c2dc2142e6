//! Operations around the routing core: TLS for signaling ([`tls`]), Prometheus metrics
//! ([`metrics`]), the audit trail ([`audit`]) and per-IP connection limits ([`limits`]). The
//! adapters (HTTP, media) call these; none of them holds relay state.

pub mod audit;
pub mod limits;
pub mod metrics;
pub mod tls;
