//! cloudpki: a self-hosted cloud PKI.
//!
//! Crate layout, top (edges) to bottom (ARCHITECTURE.md has the full codemap,
//! the path of a revocation and the invariants; `scripts/check-layers.sh`
//! checks that no module imports one above it):
//!
//! - [`cli`]: the `cloudpki` command line over the domain, and `serve`'s
//!   configuration file.
//! - [`app`]: wires a server per role (engine, snapshot maintainer, change
//!   watcher, listeners) and shuts it down gracefully.
//! - [`http`]: listeners, connection and body limits, routing; the responder
//!   routes (CRL, AIA, OCSP) read only the snapshot.
//! - [`api`]: the Graph-shaped management API: DTOs, OData, Graph errors, the
//!   route table and its OpenAPI document. Knows nothing of `http`.
//! - [`auth`]: bearer tokens (ours and external OIDC issuers), token ids and
//!   the deny list, Intune roles and per-assignment scope tags.
//! - [`observability`]: Prometheus metrics and the tracing subscriber.
//! - [`snapshot`]: immutable snapshots of everything relying parties ask
//!   for, built by a maintainer thread that follows the change log.
//! - [`crl`]: the CRL owner: every CRL scope's entries (partitions, deltas),
//!   when each is re-signed, expired entries leaving, storing what was
//!   published. Hands bytes to the snapshot, knows nothing of it.
//! - [`domain`]: certification authorities, leaf certificates, lifecycle
//!   rules, KEK rotation, audit. The only layer that writes PKI state.
//! - [`x509`]: keys and signing, certificates, CSRs, CRLs, OCSP, revocation
//!   reasons. Knows ASN.1 and crypto, nothing about storage or HTTP.
//! - [`store`]: durable state behind the [`store::Store`] trait (SQLite
//!   embedded, PostgreSQL for fleets, TLS to it). Knows rows and
//!   transactions, nothing about certificates.
//! - [`secrets`]: the key-encryption key (and the key ring held during a KEK
//!   rotation) and sealing of private keys at rest.
//! - [`config`]: data directory layout and the settings fixed at initialisation.
//! - [`clock`]: the time source, injectable for tests.

pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crl;
pub mod domain;
pub mod enrol;
pub mod http;
pub mod observability;
pub mod secrets;
pub mod snapshot;
pub mod store;
pub mod x509;
