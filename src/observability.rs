//! Metrics (Prometheus) and logs (tracing).
//!
//! Every metric is registered here, in one registry owned by the server, so
//! tests can run several servers in one process without collisions.

use std::collections::HashMap;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// All of cloudpki's metrics.
/// CRL gauges are per scope: the CA and the partition (0: `current.crl`).
const CRL_LABELS: &[&str] = &["ca", "partition"];

pub struct Metrics {
    pub registry: Registry,
    pub requests: IntCounterVec,
    pub request_seconds: HistogramVec,
    pub ocsp_outcomes: IntCounterVec,
    pub snapshot_generation: IntGauge,
    pub snapshot_seq: IntGauge,
    pub snapshot_age_seconds: prometheus::Gauge,
    pub zero_copy_bodies: IntGauge,
    pub store_degraded: IntGauge,
    pub rebuild_seconds: Histogram,
    pub crl_bytes: IntGaugeVec,
    pub crl_entries: IntGaugeVec,
    pub crl_number: IntGaugeVec,
    pub crl_this_update: IntGaugeVec,
    pub crl_next_update: IntGaugeVec,
    /// Set when /metrics is rendered: seconds since the served CRL's thisUpdate.
    pub crl_age_seconds: IntGaugeVec,
    pub crl_check_failures: IntCounterVec,
    pub crl_build_seconds: Histogram,
    pub signatures: IntCounterVec,
    pub on_demand_rejected: IntCounter,
    /// Allocator trims (see app's trim thread), by whether glibc gave pages back.
    pub allocator_trims: IntCounterVec,
    pub allocator_trim_seconds: Histogram,
    /// Pre-resolved children of `requests` / `request_seconds` / `ocsp_outcomes`:
    /// the hot path then never hashes label values or takes the vectors' locks.
    /// ahash: three lookups a request, where SipHash showed in the profile.
    hot_requests: HashMap<(&'static str, u16), IntCounter, ahash::RandomState>,
    hot_seconds: HashMap<&'static str, Histogram, ahash::RandomState>,
    hot_outcomes: HashMap<&'static str, IntCounter, ahash::RandomState>,
}

/// Routes as labelled in metrics.
pub const ROUTES: [&str; 8] = [
    "ocsp_get",
    "ocsp_post",
    "crl",
    "aia",
    "health",
    "metrics",
    "api",
    "other",
];
const STATUSES: [u16; 16] = [
    200, 201, 204, 304, 400, 401, 403, 404, 405, 408, 409, 412, 413, 414, 500, 503,
];
const OUTCOMES: [&str; 6] = ["good", "revoked", "unknown", "unauthorized", "malformed", "try_later"];

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn fast_buckets() -> Vec<f64> {
    vec![
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    ]
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("cloudpki".into()), None)?;
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by route and status"),
            &["route", "status"],
        )?;
        let request_seconds = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency by route")
                .buckets(fast_buckets()),
            &["route"],
        )?;
        let ocsp_outcomes = IntCounterVec::new(
            Opts::new("ocsp_responses_total", "OCSP answers by outcome"),
            &["outcome"],
        )?;
        let snapshot_generation = IntGauge::new("snapshot_generation", "Generation of the served snapshot")?;
        let snapshot_seq = IntGauge::new(
            "snapshot_change_seq",
            "Change-log sequence number the snapshot includes",
        )?;
        let snapshot_age_seconds = prometheus::Gauge::new(
            "snapshot_age_seconds",
            "Seconds since the served snapshot was last known current with the store",
        )?;
        let zero_copy_bodies = IntGauge::new(
            "zero_copy_bodies",
            "Published bodies (large CRLs) sent with sendfile from a file copy instead of copied per download",
        )?;
        let store_degraded = IntGauge::new(
            "store_degraded",
            "1 while the store cannot be reached and the last snapshot is served",
        )?;
        let rebuild_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "snapshot_rebuild_duration_seconds",
                "Time to apply changes and swap a snapshot",
            )
            .buckets(fast_buckets()),
        )?;
        let crl_bytes = IntGaugeVec::new(
            Opts::new(
                "crl_size_bytes",
                "Size of the served CRL (per partition; 0: current.crl)",
            ),
            CRL_LABELS,
        )?;
        let crl_entries = IntGaugeVec::new(Opts::new("crl_entries", "Entries in the served CRL"), CRL_LABELS)?;
        let crl_number = IntGaugeVec::new(Opts::new("crl_number", "CRL number of the served CRL"), CRL_LABELS)?;
        let crl_this_update = IntGaugeVec::new(
            Opts::new("crl_this_update_seconds", "thisUpdate of the served CRL (unix seconds)"),
            CRL_LABELS,
        )?;
        let crl_next_update = IntGaugeVec::new(
            Opts::new("crl_next_update_seconds", "nextUpdate of the served CRL (unix seconds)"),
            CRL_LABELS,
        )?;
        let crl_age_seconds = IntGaugeVec::new(
            Opts::new(
                "crl_age_seconds",
                "Seconds since the served CRL was published (its thisUpdate)",
            ),
            CRL_LABELS,
        )?;
        let crl_check_failures = IntCounterVec::new(
            Opts::new(
                "crl_check_failures_total",
                "Signed CRLs that failed the check before publication (neither stored nor served)",
            ),
            &["ca"],
        )?;
        let crl_build_seconds = Histogram::with_opts(
            HistogramOpts::new("crl_build_duration_seconds", "Time to sign and store one CRL").buckets(fast_buckets()),
        )?;
        let signatures = IntCounterVec::new(
            Opts::new("signatures_total", "Signatures made by the server, by purpose"),
            &["purpose"],
        )?;
        let on_demand_rejected = IntCounter::new(
            "ocsp_on_demand_rejected_total",
            "On-demand OCSP signings refused (tryLater)",
        )?;
        let allocator_trims = IntCounterVec::new(
            Opts::new(
                "allocator_trims_total",
                "Calls asking the C allocator to return free pages, by whether it released any",
            ),
            &["released"],
        )?;
        let allocator_trim_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "allocator_trim_duration_seconds",
                "Time one allocator trim took (arenas are locked meanwhile)",
            )
            .buckets(fast_buckets()),
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(request_seconds.clone()))?;
        registry.register(Box::new(ocsp_outcomes.clone()))?;
        registry.register(Box::new(snapshot_generation.clone()))?;
        registry.register(Box::new(snapshot_seq.clone()))?;
        registry.register(Box::new(snapshot_age_seconds.clone()))?;
        registry.register(Box::new(store_degraded.clone()))?;
        registry.register(Box::new(zero_copy_bodies.clone()))?;
        registry.register(Box::new(rebuild_seconds.clone()))?;
        registry.register(Box::new(crl_bytes.clone()))?;
        registry.register(Box::new(crl_entries.clone()))?;
        registry.register(Box::new(crl_number.clone()))?;
        registry.register(Box::new(crl_this_update.clone()))?;
        registry.register(Box::new(crl_next_update.clone()))?;
        registry.register(Box::new(crl_age_seconds.clone()))?;
        registry.register(Box::new(crl_check_failures.clone()))?;
        registry.register(Box::new(crl_build_seconds.clone()))?;
        registry.register(Box::new(signatures.clone()))?;
        registry.register(Box::new(on_demand_rejected.clone()))?;
        registry.register(Box::new(allocator_trims.clone()))?;
        registry.register(Box::new(allocator_trim_seconds.clone()))?;
        let mut hot_requests = HashMap::default();
        let mut hot_seconds = HashMap::default();
        for route in ROUTES {
            for status in STATUSES {
                let code = status.to_string();
                hot_requests.insert((route, status), requests.with_label_values(&[route, code.as_str()]));
            }
            hot_seconds.insert(route, request_seconds.with_label_values(&[route]));
        }
        let hot_outcomes = OUTCOMES
            .iter()
            .map(|o| (*o, ocsp_outcomes.with_label_values(&[o])))
            .collect();
        Ok(Metrics {
            hot_requests,
            hot_seconds,
            hot_outcomes,
            registry,
            requests,
            request_seconds,
            ocsp_outcomes,
            snapshot_generation,
            snapshot_seq,
            snapshot_age_seconds,
            zero_copy_bodies,
            store_degraded,
            rebuild_seconds,
            crl_bytes,
            crl_entries,
            crl_number,
            crl_this_update,
            crl_next_update,
            crl_age_seconds,
            crl_check_failures,
            crl_build_seconds,
            signatures,
            on_demand_rejected,
            allocator_trims,
            allocator_trim_seconds,
        })
    }

    /// Counts one HTTP request and its latency.
    pub fn observe_request(&self, route: &'static str, status: u16, seconds: f64) {
        match self.hot_requests.get(&(route, status)) {
            Some(c) => c.inc(),
            None => self.requests.with_label_values(&[route, &status.to_string()]).inc(),
        }
        match self.hot_seconds.get(route) {
            Some(h) => h.observe(seconds),
            None => self.request_seconds.with_label_values(&[route]).observe(seconds),
        }
    }

    /// Counts one OCSP outcome.
    pub fn observe_outcome(&self, outcome: &'static str) {
        match self.hot_outcomes.get(outcome) {
            Some(c) => c.inc(),
            None => self.ocsp_outcomes.with_label_values(&[outcome]).inc(),
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for the text format.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

/// Installs the global tracing subscriber (RUST_LOG filters; default info).
pub fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests) is harmless: keep the first subscriber.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
