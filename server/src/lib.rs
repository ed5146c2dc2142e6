//! hush-relay: work in progress.
