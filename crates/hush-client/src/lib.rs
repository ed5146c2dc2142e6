//! # hush-client: a native Hush participant
//!
//! Joins a relay room over signaling, publishes frames encrypted with hush-frame under keys from
//! hush-keys, subscribes to the other participants and decrypts what arrives. Used by tests and
//! the load tool.
