//! cloudpki: a self-hosted cloud PKI.
//!
//! Crate layout (ARCHITECTURE.md has the full codemap and invariants):
//!
//! - [`domain`]: certification authorities, leaf certificates and the lifecycle
//!   rules that govern them. The only layer that writes to the store.
//! - [`x509`]: key generation, signing, certificate / CSR building and parsing.
//!   Knows ASN.1 and crypto, nothing about storage or HTTP.
//! - [`store`]: durable state behind the [`store::Store`] trait (SQLite embedded).
//!   Knows rows and transactions, nothing about certificates.
//! - [`secrets`]: the key-encryption key (and the key ring held during a KEK
//!   rotation) and sealing of private keys at rest.
//! - [`config`]: data directory layout and the settings fixed at initialisation.
//! - [`clock`]: the time source, injectable for tests.
//! - [`cli`]: the `cloudpki` command line over the domain.

pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod http;
pub mod observability;
pub mod secrets;
pub mod snapshot;
pub mod store;
pub mod x509;
