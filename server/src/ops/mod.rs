//! Operations around the routing core: TLS for signaling ([`tls`]), Prometheus metrics
//! ([`metrics`]), the audit trail ([`audit`]), per-IP connection limits ([`limits`]) and the
//! admin API's bearer token ([`admin_token`]). The driver and the HTTP layer call these; none of
//! them holds relay state, and they depend on nothing above the core.

pub mod admin_token;
pub mod audit;
pub mod limits;
pub mod metrics;
pub mod proxy;
mod recording_metrics;
pub mod tls;
pub mod token_store;
