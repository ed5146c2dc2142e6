//! hush-keys: work in progress.
