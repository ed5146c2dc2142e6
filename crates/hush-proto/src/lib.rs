//! hush-proto: work in progress.
