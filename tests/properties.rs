//! Property tests for every parser of untrusted input (filled in next).
#![allow(clippy::unwrap_used, clippy::expect_used)]
