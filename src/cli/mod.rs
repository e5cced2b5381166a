//! The `cloudpki` command line: argument parsing and output over the domain.
//! Human tables by default, Graph-shaped JSON with `--json`.

mod crl;
mod output;
mod serve;

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{self, ConfigError, OpenOptions};
use crate::domain::{
    CaType, HashAlgorithm, KeyAlgorithm, LeafListQuery, LeafStatus, NewCa, NewLeaf, Pki, PkiError, RevocationReason,
};
use crate::x509::names::SubjectParts;
use crate::x509::{pem, X509Error};

/// Errors the command line reports (exit status 1).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error(transparent)]
    X509(#[from] X509Error),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{0}")]
    Usage(String),
    #[error("cannot write output: {0}")]
    Output(std::io::Error),
    #[error("cancelled: nothing was changed")]
    Cancelled,
    #[error(transparent)]
    Serve(#[from] crate::app::AppError),
    /// A check found a difference (`crl verify`).
    #[error("{0}")]
    Verify(String),
}

impl CliError {
    /// The process exit status: 2 for a configuration or usage error (fix
    /// the command or its settings; nothing was served or changed), 1 for
    /// anything else.
    pub fn exit_code(&self) -> u8 {
        // What the operator must fix in the command or its settings; a store
        // that cannot be reached (or a full disk) is not one of them.
        let is_config = |e: &ConfigError| match e {
            ConfigError::Store(crate::store::StoreError::Settings(_)) => true,
            ConfigError::Store(_) | ConfigError::DataDir { .. } | ConfigError::Write { .. } => false,
            _ => true,
        };
        match self {
            CliError::Usage(_) | CliError::Serve(crate::app::AppError::Auth(_)) => 2,
            CliError::Config(e) | CliError::Serve(crate::app::AppError::Config(e)) if is_config(e) => 2,
            _ => 1,
        }
    }
}

type Result<T> = std::result::Result<T, CliError>;

#[derive(Debug, Parser)]
#[command(
    name = "cloudpki",
    version,
    about = "Self-hosted cloud PKI: CAs, leaf certificates and revocation"
)]
pub struct Cli {
    /// Data directory (created on first use).
    #[arg(long, global = true, env = "CLOUDPKI_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Public base URL embedded in certificates; fixed when the data directory is created.
    #[arg(long, global = true, env = "CLOUDPKI_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// File holding the base64 key-encryption key (default: CLOUDPKI_KEK, else DATA_DIR/kek).
    #[arg(long, global = true, env = "CLOUDPKI_KEK_FILE")]
    pub kek_file: Option<PathBuf>,
    /// A second key-encryption key held during a KEK rotation (default:
    /// CLOUDPKI_NEXT_KEK): keys sealed under either open.
    #[arg(long, global = true, env = "CLOUDPKI_NEXT_KEK_FILE")]
    pub next_kek_file: Option<PathBuf>,
    /// Maximum number of CAs (default: unlimited).
    #[arg(long, global = true, env = "CLOUDPKI_MAX_CAS")]
    pub max_cas: Option<u32>,
    /// Shared PostgreSQL database (`postgres://user:pass@host/db`) instead of
    /// SQLite in the data directory: several nodes serving one PKI.
    #[arg(long, global = true, env = "CLOUDPKI_DATABASE")]
    pub database: Option<String>,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the data directory and fix its public URL.
    Init {
        /// Who signs OCSP answers: "ca" (the CA key, default) or "delegated"
        /// (an OCSP signing certificate per CA, issued and rotated automatically).
        #[arg(long, value_parser = parse_ocsp_signer)]
        ocsp_signer: Option<crate::domain::engine::OcspSigning>,
    },
    /// Certification authorities.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Leaf certificates.
    #[command(subcommand)]
    Cert(CertCommand),
    /// Run the server: CRL, AIA and OCSP for every CA.
    Serve(serve::ServeArgs),
    /// Bearer tokens for the management API.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Intune roles (Cloud PKI permissions) and their assignments to principals.
    #[command(subcommand)]
    Role(RoleCommand),
    /// The key-encryption key: status and online rotation.
    #[command(subcommand)]
    Kek(KekCommand),
    /// Certificate revocation lists.
    #[command(subcommand)]
    Crl(CrlCommand),
    /// Keyless responders' own OCSP keys: approve one to let it sign nonces,
    /// SHA-384/512 CertIDs and several CertIDs with a delegated certificate.
    #[command(subcommand)]
    Responder(ResponderCommand),
    /// Enrolment profiles: what devices may get from an issuing CA by SCEP.
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Enrolment challenges: one-time or multi-use secrets a device puts in
    /// its request (SCEP challengePassword). Shown once; only the hash is stored.
    #[command(subcommand)]
    Challenge(ChallengeCommand),
    /// Device requests under profiles that require approval.
    #[command(subcommand)]
    Enrolment(EnrolmentCommand),
}

#[derive(Debug, Subcommand)]
pub enum EnrolmentCommand {
    /// A CA's requests, newest first.
    List {
        #[arg(long)]
        ca: String,
    },
    /// Approve a pending request: its certificate is issued now, and the
    /// device gets it when it next asks.
    Approve {
        #[arg(long)]
        ca: String,
        id: String,
    },
    /// Reject a pending request.
    Reject {
        #[arg(long)]
        ca: String,
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Create a profile under an issuing CA.
    Create {
        #[arg(long)]
        ca: String,
        #[arg(long)]
        name: String,
        /// Allowed key types (rsa2048, rsa3072, rsa4096, eCP256, ...);
        /// default: the RSA sizes no stronger than the CA's key.
        #[arg(long = "key-type")]
        key_types: Vec<String>,
        /// The common name must end with one of these (default: any).
        #[arg(long = "cn-suffix")]
        cn_suffixes: Vec<String>,
        /// DNS names in subjectAltName must end with one of these ("*": any;
        /// default: no subjectAltName allowed).
        #[arg(long = "dns-suffix")]
        dns_suffixes: Vec<String>,
        /// EKUs of issued certificates (OIDs; default: the CA's).
        #[arg(long = "eku")]
        ekus: Vec<String>,
        #[arg(long, default_value_t = 365)]
        validity_days: u32,
        /// Renewals are accepted this many days before expiry.
        #[arg(long, default_value_t = 30)]
        renewal_days: u32,
        /// First enrolments wait for an administrator (`cloudpki enrolment approve`).
        #[arg(long)]
        requires_approval: bool,
        /// Key usages of issued certificates (DigitalSignature, NonRepudiation,
        /// KeyEncipherment, DataEncipherment, KeyAgreement); default: by key type.
        #[arg(long = "key-usage")]
        key_usages: Vec<String>,
    },
    /// Live profiles.
    List {
        #[arg(long)]
        ca: Option<String>,
    },
    /// Remove a profile: its challenges stop working.
    Remove { id: String },
}

#[derive(Debug, Subcommand)]
pub enum ChallengeCommand {
    /// Create a challenge for a profile.
    Create {
        #[arg(long)]
        profile: String,
        /// How many requests it authorises.
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// Hours it stays valid.
        #[arg(long, default_value_t = 24)]
        valid_hours: u64,
        /// Seconds it stays valid (instead of --valid-hours).
        #[arg(long, conflicts_with = "valid_hours")]
        valid_seconds: Option<u64>,
        /// Recorded as the issued leaf's device id.
        #[arg(long)]
        device_id: Option<String>,
        /// The common name a request must carry.
        #[arg(long)]
        subject: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ResponderCommand {
    /// Every responder that asked to sign with its own key.
    List,
    /// Trust a responder's key: the signing leader issues it a delegated OCSP
    /// certificate per CA (within seconds) and renews them.
    Approve { id: String },
    /// Stop renewing a responder's certificates (a lost or retired node):
    /// they lapse within their lifetime; the key is never trusted again.
    Remove { id: String },
    /// A token that approves responders' keys at their first start (give it
    /// to responders as CLOUDPKI_RESPONDER_ENROLMENT_TOKEN): for nodes
    /// deployed where nobody approves each one. Only its hash is stored.
    EnrolmentToken {
        /// How many responders it approves.
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// Hours it stays valid.
        #[arg(long, default_value_t = 24)]
        valid_hours: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum CrlCommand {
    /// Fetch every served CRL over HTTP from the URL in its CA's
    /// certificates, verify it as a relying party would (signature, issuer,
    /// validity, issuing distribution point) and compare it with the store
    /// (number, entries). Exits 1 on any difference.
    Verify {
        /// Only this CA.
        #[arg(long)]
        ca: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KekCommand {
    /// Current KEK id, any rotation in progress, sealed keys per KEK, live signers.
    Status,
    /// Re-seal every sealed key under a new KEK, in batches, while `serve`
    /// keeps running. Resumable: run it again after an interruption; exits 0
    /// when there is nothing left to do.
    Rotate {
        /// File holding the new base64 KEK (every running signer must hold it,
        /// e.g. as --next-kek-file, before the rotation starts).
        #[arg(long)]
        new_kek_file: PathBuf,
        /// Keys re-sealed per transaction.
        #[arg(long, default_value_t = 100)]
        batch_size: u32,
    },
    /// Open every sealed key with the KEKs given (nothing is printed but a
    /// count); fails naming the first key that does not open.
    Verify,
    /// Print the id of a KEK file (what `kek status` and sealed keys show).
    Id {
        #[arg(long)]
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a signed token for a principal.
    Create {
        #[arg(long)]
        principal: String,
        /// Delegated Graph permission (repeatable), e.g. DeviceManagementCloudCA.ReadWrite.All.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Application Graph permission (repeatable), sent in `roles`.
        #[arg(long = "app-role")]
        app_roles: Vec<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: i64,
    },
    /// List the tokens minted here that have not expired (id, principal, expiry, revoked).
    List,
    /// Revoke a token by id (`jti`) before it expires: every node refuses it
    /// from its next request on. Also takes an external token's `jti`/`uti`.
    Revoke {
        /// The token id, as `token list` shows it.
        jti: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Create or replace a custom role.
    Create {
        #[arg(long)]
        name: String,
        /// "Read CAs", "Create certificate authorities", "Disable and reenable CAs",
        /// "Revoke issued leaf certificates" (repeatable).
        #[arg(long = "permission")]
        permissions: Vec<String>,
    },
    /// Assign a role ("Intune Administrator" or a custom one) on scope tags.
    Assign {
        #[arg(long)]
        principal: String,
        #[arg(long)]
        role: String,
        #[arg(long = "scope-tag")]
        scope_tags: Vec<String>,
    },
    List,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CaKind {
    Root,
    Issuing,
    External,
}

#[derive(Debug, Args)]
pub struct CreateCa {
    #[arg(long = "type", value_enum)]
    pub kind: CaKind,
    #[arg(long)]
    pub common_name: String,
    /// The root an issuing CA is anchored to.
    #[arg(long)]
    pub issuer: Option<String>,
    /// rsa2048, rsa3072, rsa4096, eCP256, eCP256k, eCP384, eCP521.
    #[arg(long, default_value = "rsa2048", value_parser = parse_key_size)]
    pub key_size: KeyAlgorithm,
    /// sha256, sha384, sha512.
    #[arg(long, default_value = "sha256", value_parser = parse_hash)]
    pub hash: HashAlgorithm,
    /// Default: 10 for a root, 4 for an issuing CA.
    #[arg(long)]
    pub validity_years: Option<u32>,
    /// Extended key usage OID (repeatable).
    #[arg(long = "eku")]
    pub ekus: Vec<String>,
    #[arg(long)]
    pub display_name: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
    #[arg(long)]
    pub organization: Option<String>,
    #[arg(long)]
    pub organization_unit: Option<String>,
    /// Two-letter country code.
    #[arg(long)]
    pub country: Option<String>,
    #[arg(long)]
    pub state: Option<String>,
    #[arg(long)]
    pub locality: Option<String>,
    /// Role scope tag id (repeatable; default "0").
    #[arg(long = "scope-tag")]
    pub scope_tags: Vec<String>,
    /// CRL partitions the leaves of an issuing CA are spread over (default
    /// 16; 0: one current.crl).
    #[arg(long)]
    pub crl_partitions: Option<u32>,
    /// Publish delta CRLs beside each CRL (leaves name them in their
    /// Freshest CRL extension).
    #[arg(long)]
    pub delta_crls: bool,
}

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create a root CA, an issuing CA under a root, or an issuing CA for an external root.
    Create(Box<CreateCa>),
    List,
    Show {
        id: String,
    },
    /// Stop issuance; CRL, AIA and OCSP keep answering.
    Pause {
        id: String,
    },
    /// Spread new leaves over more CRL partitions (never fewer: existing
    /// leaves keep the CRL their certificate names).
    CrlPartitions {
        id: String,
        count: u32,
    },
    /// Start publishing delta CRLs beside each CRL (cannot be undone:
    /// certificates issued from now on name them).
    EnableDeltaCrls {
        id: String,
    },
    Resume {
        id: String,
    },
    /// Revoke a paused issuing CA with no active leaves (irreversible; on a
    /// terminal, asks first).
    Revoke {
        id: String,
        #[arg(long, value_parser = parse_reason)]
        reason: Option<RevocationReason>,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Delete a revoked issuing CA, or a root with no issuing CA left
    /// (irreversible; on a terminal, asks first).
    Delete {
        id: String,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Print the CSR of a CA awaiting its external signature (PEM).
    Csr {
        id: String,
    },
    /// Upload the externally signed certificate and its chain up to the root.
    Upload {
        id: String,
        #[arg(long)]
        cert: PathBuf,
        #[arg(long)]
        chain: PathBuf,
    },
    /// Print the CA certificate (PEM).
    Cert {
        id: String,
        /// Append the certificates above it.
        #[arg(long)]
        chain: bool,
    },
}

#[derive(Debug, Args, Default)]
pub struct LeafMeta {
    #[arg(long)]
    pub device_name: Option<String>,
    #[arg(long)]
    pub user_principal_name: Option<String>,
    #[arg(long)]
    pub device_id: Option<String>,
    #[arg(long)]
    pub user_id: Option<String>,
    /// Graph devicePlatform (default Unknown).
    #[arg(long)]
    pub device_platform: Option<String>,
    /// Requested validity in days (default 365, capped at the CA's notAfter).
    #[arg(long)]
    pub validity_days: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Issue a leaf certificate from a PKCS#10 request (PEM or DER).
    Issue {
        #[arg(long)]
        ca: String,
        #[arg(long)]
        csr: PathBuf,
        #[command(flatten)]
        meta: LeafMeta,
        /// Print the certificate as PEM instead of a summary.
        #[arg(long)]
        pem: bool,
    },
    /// Issue many leaves for one request (fixtures, load tests).
    IssueBulk {
        #[arg(long)]
        ca: String,
        #[arg(long)]
        csr: PathBuf,
        #[arg(long)]
        count: u64,
        /// Leaves per transaction.
        #[arg(long, default_value_t = 1000)]
        batch: u64,
        #[command(flatten)]
        meta: LeafMeta,
    },
    List {
        #[arg(long)]
        ca: Option<String>,
        /// active, revoked or expired.
        #[arg(long, value_parser = parse_leaf_status)]
        status: Option<LeafStatus>,
        /// At most this many (default: all).
        #[arg(long)]
        limit: Option<u64>,
    },
    Show {
        id: String,
        #[arg(long)]
        pem: bool,
    },
    /// Revoke one leaf, by id or by serial number.
    Revoke {
        #[arg(required_unless_present = "serial", conflicts_with = "serial")]
        id: Option<String>,
        #[arg(long)]
        serial: Option<String>,
        /// Restrict the serial search to this CA.
        #[arg(long)]
        ca: Option<String>,
        #[arg(long, value_parser = parse_reason, default_value = "unspecified")]
        reason: RevocationReason,
    },
    /// Revoke every active leaf of a CA (committed in batches; irreversible;
    /// on a terminal, asks first).
    RevokeAll {
        #[arg(long)]
        ca: String,
        #[arg(long, value_parser = parse_reason, default_value = "cessationOfOperation")]
        reason: RevocationReason,
        /// Leaves per transaction.
        #[arg(long, default_value_t = 500)]
        batch: u32,
        /// Revoke at most this many (the oldest first): a staged mass revocation.
        #[arg(long)]
        limit: Option<u64>,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

fn parse_ocsp_signer(s: &str) -> std::result::Result<crate::domain::engine::OcspSigning, String> {
    crate::domain::engine::OcspSigning::parse(s).ok_or_else(|| "expected ca or delegated".into())
}

fn parse_key_size(s: &str) -> std::result::Result<KeyAlgorithm, String> {
    KeyAlgorithm::parse(s).ok_or_else(|| "expected rsa2048, rsa3072, rsa4096, eCP256, eCP256k, eCP384 or eCP521".into())
}

fn parse_hash(s: &str) -> std::result::Result<HashAlgorithm, String> {
    HashAlgorithm::parse(s).ok_or_else(|| "expected sha256, sha384 or sha512".into())
}

fn parse_reason(s: &str) -> std::result::Result<RevocationReason, String> {
    RevocationReason::parse(s).ok_or_else(|| {
        let names: Vec<_> = RevocationReason::ALL.iter().map(|r| r.name()).collect();
        format!("expected one of {}", names.join(", "))
    })
}

fn parse_leaf_status(s: &str) -> std::result::Result<LeafStatus, String> {
    LeafStatus::parse(s).ok_or_else(|| "expected active, revoked or expired".into())
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| CliError::Io {
        path: path.display().to_string(),
        source,
    })
}

impl Cli {
    fn open_options(&self) -> OpenOptions {
        OpenOptions {
            data_dir: self.data_dir.clone().unwrap_or_else(config::default_data_dir),
            public_url: self.public_url.clone(),
            default_public_url: None,
            kek_file: self.kek_file.clone(),
            kek_base64: std::env::var(config::KEK_ENV).ok().filter(|s| !s.is_empty()),
            next_kek_files: self
                .next_kek_file
                .iter()
                .cloned()
                .chain(match &self.command {
                    Command::Kek(KekCommand::Rotate { new_kek_file, .. }) => Some(new_kek_file.clone()),
                    _ => None,
                })
                .collect(),
            next_kek_base64: std::env::var(config::NEXT_KEK_ENV).ok().filter(|s| !s.is_empty()),
            max_cas: self.max_cas,
            ocsp_signing: match &self.command {
                Command::Init { ocsp_signer } => *ocsp_signer,
                _ => None,
            },
            database: self.database.clone(),
            // Status reads headers only: it needs no KEK.
            keyless: matches!(self.command, Command::Kek(KekCommand::Status) | Command::Responder(_)),
        }
    }
}

fn profile_command(pki: &crate::domain::Pki, cmd: ProfileCommand, o: &mut output::Output<'_>) -> Result<()> {
    match cmd {
        ProfileCommand::Create {
            ca,
            name,
            key_types,
            cn_suffixes,
            dns_suffixes,
            ekus,
            validity_days,
            renewal_days,
            requires_approval,
            key_usages,
        } => {
            let key_types = key_types
                .iter()
                .map(|k| {
                    crate::x509::KeyAlgorithm::parse(k)
                        .ok_or_else(|| CliError::Usage(format!("unknown key type {k:?}")))
                })
                .collect::<Result<Vec<_>>>()?;
            let ekus = ekus
                .iter()
                .map(|e| {
                    der::asn1::ObjectIdentifier::new(e).map_err(|_| CliError::Usage(format!("{e:?} is not an OID")))
                })
                .collect::<Result<Vec<_>>>()?;
            let p = pki.create_profile(&crate::domain::NewProfile {
                ca_id: ca,
                name,
                key_types,
                cn_suffixes,
                dns_suffixes,
                ekus,
                validity_days,
                renewal_days,
                requires_approval,
                key_usages,
            })?;
            o.profiles(&[p])
        }
        ProfileCommand::List { ca } => o.profiles(&pki.profiles(ca.as_deref())?),
        ProfileCommand::Remove { id } => {
            pki.remove_profile(&id)?;
            o.deleted(&id)
        }
    }
}

/// Runs one command, writing results to `out`.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<()> {
    if let Command::Serve(args) = &cli.command {
        return serve::run(&cli, args);
    }
    if let Command::Kek(KekCommand::Id { file }) = &cli.command {
        let kek = crate::secrets::Kek::from_file(file).map_err(|e| CliError::Usage(e.to_string()))?;
        return output::Output::new(out, cli.json).kek_id(kek.id());
    }
    let pki = config::open(&cli.open_options())?;
    let json = cli.json;
    let mut o = output::Output::new(out, json);
    match cli.command {
        Command::Init { .. } => {
            let opts = cli.open_options();
            o.init(&opts.data_dir, &pki.settings().public_url)
        }
        Command::Ca(cmd) => ca_command(&pki, cmd, &mut o),
        Command::Crl(CrlCommand::Verify { ca }) => crl::verify(&pki, ca.as_deref(), &mut o),
        Command::Responder(ResponderCommand::List) => o.responders(&pki.responders()?),
        Command::Responder(ResponderCommand::Approve { id }) => {
            o.responders(&[pki.set_responder(&id, crate::domain::lifecycle::ResponderAction::Approve)?])
        }
        Command::Responder(ResponderCommand::Remove { id }) => {
            o.responders(&[pki.set_responder(&id, crate::domain::lifecycle::ResponderAction::Remove)?])
        }
        Command::Responder(ResponderCommand::EnrolmentToken { uses, valid_hours }) => {
            o.enrolment_token(&pki.create_enrolment_token(uses, time::Duration::hours(valid_hours))?)
        }
        Command::Cert(cmd) => cert_command(&pki, cmd, &mut o),
        Command::Profile(cmd) => profile_command(&pki, cmd, &mut o),
        Command::Enrolment(EnrolmentCommand::List { ca }) => o.enrolment_requests(&pki.enrolment_requests(&ca)?),
        Command::Enrolment(EnrolmentCommand::Approve { ca, id }) => {
            o.enrolment_requests(&[pki.decide_enrolment(&ca, &id, true, None)?])
        }
        Command::Enrolment(EnrolmentCommand::Reject { ca, id, reason }) => {
            o.enrolment_requests(&[pki.decide_enrolment(&ca, &id, false, reason)?])
        }
        Command::Challenge(ChallengeCommand::Create {
            profile,
            uses,
            valid_hours,
            valid_seconds,
            device_id,
            subject,
        }) => o.challenge(&pki.create_challenge(&crate::domain::NewChallenge {
            profile_id: profile,
            uses,
            valid_for: std::time::Duration::from_secs(valid_seconds.unwrap_or(valid_hours.saturating_mul(3600))),
            device_id,
            subject,
        })?),
        Command::Serve(_) | Command::Kek(KekCommand::Id { .. }) => Ok(()),
        Command::Kek(KekCommand::Status) => o.kek_status(&pki.kek_status()?),
        Command::Kek(KekCommand::Verify) => o.sealed_keys_opened(pki.verify_sealed_keys()?),
        Command::Kek(KekCommand::Rotate {
            new_kek_file,
            batch_size,
        }) => kek_rotate(&pki, &new_kek_file, batch_size, &mut o),
        Command::Token(TokenCommand::Create {
            principal,
            scopes,
            app_roles,
            ttl,
        }) => {
            if ttl <= 0 || ttl > 366 * 86_400 {
                return Err(CliError::Usage("--ttl must be 1 second to 366 days".into()));
            }
            let issuer = crate::auth::TokenIssuer::load_or_create(&pki).map_err(|e| CliError::Usage(e.to_string()))?;
            let (token, _) = crate::auth::mint(&pki, &issuer, &principal, &scopes, &app_roles, ttl)
                .map_err(|e| CliError::Usage(e.to_string()))?;
            o.raw(&format!("{token}\n"))
        }
        Command::Token(TokenCommand::List) => {
            let tokens = crate::auth::list_tokens(&pki).map_err(|e| CliError::Usage(e.to_string()))?;
            o.tokens(&tokens)
        }
        Command::Token(TokenCommand::Revoke { jti }) => {
            let by = crate::domain::audit::current_actor();
            let fresh = crate::auth::revoke_token(&pki, &jti, &by).map_err(|e| CliError::Usage(e.to_string()))?;
            o.raw(&if fresh {
                format!("token {jti} revoked\n")
            } else {
                format!("token {jti} was already revoked\n")
            })
        }
        Command::Role(RoleCommand::Create { name, permissions }) => {
            let perms = crate::auth::put_role(&pki, &name, &permissions).map_err(|e| CliError::Usage(e.to_string()))?;
            o.raw(&format!(
                "role {name}: {}\n",
                perms.iter().map(|p| p.name()).collect::<Vec<_>>().join(", ")
            ))
        }
        Command::Role(RoleCommand::Assign {
            principal,
            role,
            scope_tags,
        }) => {
            crate::auth::assign(&pki, &principal, &role, &scope_tags).map_err(|e| CliError::Usage(e.to_string()))?;
            o.raw(&format!("assigned {role} to {principal}\n"))
        }
        Command::Role(RoleCommand::List) => {
            let (roles, assignments) = crate::auth::list(&pki).map_err(|e| CliError::Usage(e.to_string()))?;
            let mut text = String::new();
            for (name, perms) in roles {
                text.push_str(&format!("role {name}: {perms}\n"));
            }
            for (principal, role, tags) in assignments {
                text.push_str(&format!("assignment {principal} -> {role} on {tags}\n"));
            }
            o.raw(&text)
        }
    }
}

fn ca_command(pki: &Pki, cmd: CaCommand, o: &mut output::Output<'_>) -> Result<()> {
    match cmd {
        CaCommand::Create(c) => {
            let ca_type = match c.kind {
                CaKind::Root => CaType::RootCertificationAuthority,
                CaKind::Issuing => CaType::IssuingCertificationAuthority,
                CaKind::External => CaType::IssuingCertificationAuthorityWithExternalRoot,
            };
            let default_years = if matches!(c.kind, CaKind::Root) { 10 } else { 4 };
            let ca = pki.create_ca(NewCa {
                ca_type,
                display_name: c.display_name,
                description: c.description,
                subject: SubjectParts {
                    common_name: c.common_name,
                    organization_name: c.organization,
                    organization_unit: c.organization_unit,
                    country_name: c.country,
                    state_name: c.state,
                    locality_name: c.locality,
                },
                issuer_id: c.issuer,
                key_size: c.key_size,
                hash: c.hash,
                validity_years: c.validity_years.unwrap_or(default_years),
                ekus: c.ekus,
                role_scope_tag_ids: c.scope_tags,
                crl_partitions: c.crl_partitions,
                delta_crls: c.delta_crls,
            })?;
            o.ca(&ca)
        }
        CaCommand::EnableDeltaCrls { id } => o.ca(&pki.update_ca(
            &id,
            None,
            crate::domain::CaPatch {
                delta_crls: Some(true),
                ..Default::default()
            },
        )?),
        CaCommand::CrlPartitions { id, count } => o.ca(&pki.update_ca(
            &id,
            None,
            crate::domain::CaPatch {
                crl_partitions: Some(count),
                ..Default::default()
            },
        )?),
        CaCommand::List => o.cas(&pki.list_cas()?),
        CaCommand::Show { id } => o.ca(&pki.get_ca(&id)?),
        CaCommand::Pause { id } => {
            o.ca(&pki.pause_ca(&id)?)?;
            o.note(&format!(
                "paused: this CA issues no certificate until `cloudpki ca resume {id}`. Its CRL, AIA \
                 (CA certificate) and OCSP URLs keep answering, and its certificates can still be revoked."
            ))
        }
        CaCommand::Resume { id } => o.ca(&pki.resume_ca(&id)?),
        CaCommand::Revoke { id, reason, yes } => {
            let ca = pki.get_ca(&id)?;
            confirm(
                &format!(
                    "About to revoke the certificate of CA {}.\n\
                     This is irreversible: the certificate goes on its issuer's CRL and OCSP answers \
                     \"revoked\" for it; the CA never issues again and can afterwards only be deleted.",
                    describe(&ca)
                ),
                yes,
            )?;
            o.ca(&pki.revoke_ca(&id, reason)?)
        }
        CaCommand::Delete { id, yes } => {
            let ca = pki.get_ca(&id)?;
            confirm(
                &format!(
                    "About to delete CA {}.\n\
                     This is irreversible: its private keys are destroyed and it leaves the API; \
                     a revoked issuing CA stays listed on its root's CRL.",
                    describe(&ca)
                ),
                yes,
            )?;
            pki.delete_ca(&id, None)?;
            o.deleted(&id)
        }
        CaCommand::Csr { id } => o.raw(&pem::encode("CERTIFICATE REQUEST", &pki.ca_csr(&id)?)?),
        CaCommand::Upload { id, cert, chain } => {
            let ca = pki.upload_signed_certificate(&id, &read_file(&cert)?, &read_file(&chain)?)?;
            o.ca(&ca)
        }
        CaCommand::Cert { id, chain } => {
            let mut text = pem::encode("CERTIFICATE", &pki.ca_certificate(&id)?)?;
            if chain {
                for c in pki.ca_chain(&id)? {
                    text.push_str(&pem::encode("CERTIFICATE", &c)?);
                }
            }
            o.raw(&text)
        }
    }
}

/// A CA as a confirmation question names it.
fn describe(ca: &crate::domain::Ca) -> String {
    format!(
        "\"{}\" ({}, {}, {}, id {})",
        ca.display_name,
        ca.subject_name,
        ca.ca_type.name(),
        ca.status.name(),
        ca.id
    )
}

/// Irreversible commands ask first when a person is at a terminal (stdin is
/// one): `what` and a y/N question on stderr, anything but y/yes cancels.
/// `--yes`, or no terminal (scripts, pipes), proceeds as before.
fn confirm(what: &str, yes: bool) -> Result<()> {
    use std::io::IsTerminal;
    if yes || !std::io::stdin().is_terminal() {
        return Ok(());
    }
    let mut err = std::io::stderr().lock();
    write!(err, "{what}\nProceed? [y/N] ")
        .and_then(|()| err.flush())
        .map_err(CliError::Output)?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).map_err(|source| CliError::Io {
        path: "stdin".into(),
        source,
    })?;
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err(CliError::Cancelled),
    }
}

fn new_leaf(csr_path: &Path, meta: LeafMeta) -> Result<NewLeaf> {
    let csr = pem::decode_one(
        &read_file(csr_path)?,
        &["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"],
    )?;
    Ok(NewLeaf {
        csr,
        device_name: meta.device_name,
        user_principal_name: meta.user_principal_name,
        device_id: meta.device_id,
        user_id: meta.user_id,
        device_platform: meta.device_platform,
        validity_days: meta.validity_days,
        key_usages: Vec::new(),
    })
}

fn cert_command(pki: &Pki, cmd: CertCommand, o: &mut output::Output<'_>) -> Result<()> {
    match cmd {
        CertCommand::Issue {
            ca,
            csr,
            meta,
            pem: as_pem,
        } => {
            let (leaf, der) = pki.issue_leaf(&ca, &new_leaf(&csr, meta)?)?;
            if as_pem {
                o.raw(&pem::encode("CERTIFICATE", &der)?)
            } else {
                o.leaf(&leaf)
            }
        }
        CertCommand::IssueBulk {
            ca,
            csr,
            count,
            batch,
            meta,
        } => {
            let req = new_leaf(&csr, meta)?;
            let bar = o.progress(count, "issuing");
            let n = pki.issue_leaves_bulk(&ca, &req, count, batch, &mut |done| bar.inc(done.len() as u64))?;
            bar.finish_and_clear();
            o.count("issued", n)
        }
        CertCommand::List { ca, status, limit } => {
            let limit = limit.unwrap_or(u64::MAX);
            let mut after = 0;
            let mut all = Vec::new();
            while (all.len() as u64) < limit {
                let page_size = (limit - all.len() as u64).min(1000) as u32;
                let page = pki.list_leaves(&LeafListQuery {
                    ca_id: ca.clone(),
                    status,
                    after_seq: after,
                    limit: page_size,
                })?;
                let Some((last, _)) = page.last() else { break };
                after = *last;
                all.extend(page.into_iter().map(|(_, l)| l));
            }
            o.leaves(&all)
        }
        CertCommand::Show { id, pem: as_pem } => {
            let (leaf, der) = pki.get_leaf(&id)?;
            if as_pem {
                o.raw(&pem::encode("CERTIFICATE", &der)?)
            } else {
                o.leaf(&leaf)
            }
        }
        CertCommand::Revoke { id, serial, ca, reason } => {
            let leaf = match (id, serial) {
                (Some(id), None) => pki.revoke_leaf(&id, ca.as_deref(), reason)?,
                (None, Some(serial)) => pki.revoke_leaf_by_serial(ca.as_deref(), &serial, reason)?,
                _ => return Err(CliError::Usage("give a leaf id or --serial, not both".into())),
            };
            o.leaf(&leaf)
        }
        CertCommand::RevokeAll {
            ca,
            reason,
            batch,
            limit,
            yes,
        } => {
            let active = pki.count_leaves(Some(&ca), Some(LeafStatus::Active))?;
            let total = limit.map_or(active, |l| active.min(l));
            if total > 0 {
                confirm(
                    &format!(
                        "About to revoke {total} active leaf certificate(s) of CA {} (reason {}).\n\
                         This is irreversible: each goes on the CA's CRL and OCSP answers \"revoked\" for it.",
                        describe(&pki.get_ca(&ca)?),
                        reason.name()
                    ),
                    yes,
                )?;
            }
            let bar = o.progress(total, "revoking");
            let mut write_err = None;
            let n = pki.revoke_all_leaves(&ca, reason, batch, limit, &mut |done| {
                bar.inc(done.len() as u64);
                if let Err(e) = o.acknowledged(done) {
                    write_err.get_or_insert(e);
                }
            })?;
            bar.finish_and_clear();
            if let Some(e) = write_err {
                return Err(e);
            }
            o.count("revoked", n)
        }
    }
}

/// `kek rotate`: begin or resume, batches until the pass is done, then the
/// final transaction. Each step is committed on its own, so a kill at any
/// point leaves a state the next run continues from.
fn kek_rotate(pki: &Pki, new_kek_file: &Path, batch_size: u32, o: &mut output::Output<'_>) -> Result<()> {
    use crate::domain::kek::RotationStart;
    if batch_size == 0 {
        return Err(CliError::Usage("--batch-size must be at least 1".into()));
    }
    let target = crate::secrets::Kek::from_file(new_kek_file)
        .map_err(|e| CliError::Usage(e.to_string()))?
        .id();
    let start = pki.begin_kek_rotation(target)?;
    if start == RotationStart::AlreadyCurrent {
        return o.kek_rotation_event("current", &target.to_string(), 0, 0);
    }
    o.kek_rotation_event(
        match start {
            RotationStart::Resumed { .. } => "resumed",
            _ => "started",
        },
        &target.to_string(),
        0,
        0,
    )?;
    let mut total = 0u64;
    loop {
        let b = pki.kek_rotation_batch(batch_size)?;
        total += u64::from(b.resealed);
        if b.examined > 0 {
            o.kek_rotation_event("batch", &target.to_string(), b.examined.into(), b.resealed.into())?;
        }
        if b.pass_done {
            break;
        }
    }
    let stragglers = pki.finish_kek_rotation()?;
    o.kek_rotation_event("completed", &target.to_string(), 0, total + stragglers)
}
