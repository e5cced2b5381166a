//! Integration tests: the real `cloudpki` binary driven as an operator would,
#![allow(clippy::unwrap_used, clippy::expect_used)]
//! checked with tools we did not write (openssl, pkilint).

mod api;
mod api_conformance;
mod chains;
mod crl;
mod durability;
mod enrolment;
mod external;
mod fleet;
mod kek;
mod lifecycle;
mod migration;
mod regressions;
mod responder;
mod security;
mod server;
mod support;
