//! Bearer tokens and Intune-style role-based access control.
//!
//! Tokens are JWTs. cloudpki is its own issuer (ES256; the signing key is
//! generated on first use and sealed with the KEK like CA keys); `cloudpki
//! token create` mints them. A token carries Graph permissions in `scp`
//! (delegated, space-separated) or `roles` (application), and names a
//! principal in `sub`. On top of the Graph permission, the principal's Intune
//! role assignments decide which Cloud PKI operations it may perform and on
//! which CAs (scope tags).

use std::collections::BTreeSet;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::domain::Pki;
use crate::store::TxMode;
use crate::x509::{pem, HashAlgorithm, KeyAlgorithm, Signer, SoftwareKey};

use crate::domain::kek::META_TOKEN_KEY;
use crate::secrets::SealedKind;
pub const AUDIENCE: &str = "cloudpki";

/// Graph permissions (scopes or app roles) that open the API.
pub const READ_PERMISSIONS: [&str; 4] = [
    "DeviceManagementConfiguration.Read.All",
    "DeviceManagementConfiguration.ReadWrite.All",
    "DeviceManagementCloudCA.Read.All",
    "DeviceManagementCloudCA.ReadWrite.All",
];
pub const WRITE_PERMISSIONS: [&str; 2] = [
    "DeviceManagementConfiguration.ReadWrite.All",
    "DeviceManagementCloudCA.ReadWrite.All",
];

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    #[error("no bearer token")]
    Missing,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("token issuer key: {0}")]
    Key(String),
}

/// The claims cloudpki reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub exp: i64,
    pub nbf: i64,
    pub iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scp: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

impl Claims {
    /// Graph permissions granted, from `scp` and `roles`.
    pub fn permissions(&self) -> BTreeSet<&str> {
        let mut out: BTreeSet<&str> = self.roles.iter().map(String::as_str).collect();
        if let Some(scp) = &self.scp {
            out.extend(scp.split_whitespace());
        }
        out
    }

    pub fn can_read(&self) -> bool {
        let p = self.permissions();
        READ_PERMISSIONS.iter().any(|r| p.contains(r))
    }

    pub fn can_write(&self) -> bool {
        let p = self.permissions();
        WRITE_PERMISSIONS.iter().any(|r| p.contains(r))
    }
}

/// cloudpki's own token issuer, and the external OIDC issuers it also trusts.
pub struct TokenIssuer {
    issuer: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    external: Vec<ExternalIssuer>,
}

/// An external OIDC issuer (Entra ID, Keycloak…) as configured.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcIssuerConfig {
    /// The `iss` its tokens carry, exactly.
    pub issuer: String,
    /// The `aud` cloudpki requires (the app registration's id or URI).
    pub audience: String,
    /// A JWKS document (`{"keys": [...]}`) saved from the issuer's jwks_uri.
    pub jwks_file: std::path::PathBuf,
    /// The claim naming the principal; `sub` by default (Entra: `oid` or `upn`).
    #[serde(default)]
    pub principal_claim: Option<String>,
}

/// Asymmetric algorithms accepted from external issuers; never HMAC, never `none`.
const EXTERNAL_ALGORITHMS: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// A trusted external issuer: its keys, audience and principal claim.
#[derive(Debug)]
pub struct ExternalIssuer {
    issuer: String,
    audience: String,
    keys: jsonwebtoken::jwk::JwkSet,
    principal_claim: String,
}

/// The claims read from an external token (Keycloak names scopes `scope`).
#[derive(Debug, Deserialize)]
struct ExternalClaims {
    exp: i64,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    scp: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

impl ExternalIssuer {
    /// Reads the JWKS file named by `cfg`.
    pub fn load(cfg: &OidcIssuerConfig) -> Result<Self, AuthError> {
        let text = std::fs::read_to_string(&cfg.jwks_file)
            .map_err(|e| AuthError::Key(format!("{}: {e}", cfg.jwks_file.display())))?;
        Self::from_jwks(cfg, &text)
    }

    pub fn from_jwks(cfg: &OidcIssuerConfig, jwks: &str) -> Result<Self, AuthError> {
        let keys: jsonwebtoken::jwk::JwkSet =
            serde_json::from_str(jwks).map_err(|e| AuthError::Key(format!("JWKS for {}: {e}", cfg.issuer)))?;
        if keys.keys.is_empty() {
            return Err(AuthError::Key(format!("the JWKS for {} has no keys", cfg.issuer)));
        }
        Ok(ExternalIssuer {
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.clone(),
            keys,
            principal_claim: cfg.principal_claim.clone().unwrap_or_else(|| "sub".into()),
        })
    }

    fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let invalid = |m: String| AuthError::Invalid(m);
        let header = jsonwebtoken::decode_header(token).map_err(|e| invalid(e.to_string()))?;
        if !EXTERNAL_ALGORITHMS.contains(&header.alg) {
            return Err(invalid(format!("algorithm {:?} is not accepted", header.alg)));
        }
        let jwk = match &header.kid {
            Some(kid) => self.keys.find(kid),
            None if self.keys.keys.len() == 1 => self.keys.keys.first(),
            None => None,
        }
        .ok_or_else(|| invalid(format!("no key of {} matches the token's kid", self.issuer)))?;
        if let Some(alg) = jwk.common.key_algorithm {
            if Algorithm::try_from(alg).ok() != Some(header.alg) {
                return Err(invalid("the token's algorithm differs from its key's".into()));
            }
        }
        let key = DecodingKey::from_jwk(jwk).map_err(|e| invalid(e.to_string()))?;
        let mut v = Validation::new(header.alg);
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.audience]);
        v.validate_nbf = true;
        v.leeway = 60;
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        let c = jsonwebtoken::decode::<ExternalClaims>(token, &key, &v)
            .map_err(|e| invalid(e.to_string()))?
            .claims;
        let sub = c
            .rest
            .get(&self.principal_claim)
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid(format!("the token has no {} claim", self.principal_claim)))?;
        Ok(Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: sub.to_owned(),
            exp: c.exp,
            nbf: c.nbf.or(c.iat).unwrap_or(0),
            iat: c.iat.unwrap_or(0),
            scp: c.scp.or(c.scope),
            roles: c.roles,
        })
    }
}

#[derive(Deserialize)]
struct IssuerOnly {
    #[serde(default)]
    iss: String,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl TokenIssuer {
    /// Loads the issuer key from the store, creating it on first use.
    pub fn load_or_create(pki: &Pki) -> Result<Self, AuthError> {
        let key_err = |e: &dyn std::fmt::Display| AuthError::Key(e.to_string());
        let mut tx = pki.store().begin(TxMode::Write).map_err(|e| key_err(&e))?;
        let pkcs8 = match tx.meta(META_TOKEN_KEY).map_err(|e| key_err(&e))? {
            Some(sealed_b64) => {
                let sealed =
                    <base64ct::Base64 as base64ct::Encoding>::decode_vec(&sealed_b64).map_err(|e| key_err(&e))?;
                pki.unseal(SealedKind::TokenSigningKey, "", &sealed)
                    .map_err(|e| key_err(&e))?
            }
            None => {
                let pkcs8 = crate::x509::keys::generate_pkcs8(KeyAlgorithm::EcP256).map_err(|e| key_err(&e))?;
                let sealed = pki
                    .seal_in(tx.as_mut(), SealedKind::TokenSigningKey, "", &pkcs8)
                    .map_err(|e| key_err(&e))?;
                tx.set_meta(
                    META_TOKEN_KEY,
                    &<base64ct::Base64 as base64ct::Encoding>::encode_string(&sealed),
                )
                .map_err(|e| key_err(&e))?;
                pkcs8
            }
        };
        tx.commit().map_err(|e| key_err(&e))?;
        let key =
            SoftwareKey::from_pkcs8(KeyAlgorithm::EcP256, HashAlgorithm::Sha256, &pkcs8).map_err(|e| key_err(&e))?;
        let spki = der::Encode::to_der(key.public_key()).map_err(|e| key_err(&e))?;
        let public_pem = pem::encode("PUBLIC KEY", &spki).map_err(|e| key_err(&e))?;
        Ok(TokenIssuer {
            issuer: format!("{}/token", pki.settings().public_url),
            encoding: EncodingKey::from_ec_der(&pkcs8),
            decoding: DecodingKey::from_ec_pem(public_pem.as_bytes()).map_err(|e| key_err(&e))?,
            external: Vec::new(),
        })
    }

    /// Also trusts these external issuers.
    pub fn with_external(mut self, external: Vec<ExternalIssuer>) -> Self {
        self.external = external;
        self
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Mints a token for `principal` valid `ttl` seconds.
    pub fn issue(&self, principal: &str, scopes: &[String], roles: &[String], ttl: i64) -> Result<String, AuthError> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: AUDIENCE.into(),
            sub: principal.into(),
            exp: now + ttl,
            nbf: now - 60,
            iat: now,
            scp: if scopes.is_empty() {
                None
            } else {
                Some(scopes.join(" "))
            },
            roles: roles.to_vec(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &self.encoding)
            .map_err(|e| AuthError::Invalid(e.to_string()))
    }

    /// Verifies signature, `exp`/`nbf`, issuer and audience, with the key of
    /// the issuer the token names (ours or a configured external one).
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        // The unverified `iss` only picks the key; the chosen issuer's checks decide.
        let iss = jsonwebtoken::dangerous::insecure_decode_claims::<IssuerOnly>(token)
            .map_err(|e| AuthError::Invalid(e.to_string()))?
            .iss;
        if iss == self.issuer {
            return self.verify_own(token);
        }
        match self.external.iter().find(|e| e.issuer == iss) {
            Some(e) => e.verify(token),
            None => Err(AuthError::Invalid(format!(
                "tokens from issuer {iss:?} are not trusted"
            ))),
        }
    }

    fn verify_own(&self, token: &str) -> Result<Claims, AuthError> {
        let mut v = Validation::new(Algorithm::ES256);
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[AUDIENCE]);
        v.validate_nbf = true;
        v.leeway = 30;
        v.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &v)
            .map(|d| d.claims)
            .map_err(|e| AuthError::Invalid(e.to_string()))
    }
}

/// The Cloud PKI permissions of Intune custom roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum CloudPkiPermission {
    #[serde(rename = "Read CAs")]
    ReadCas,
    #[serde(rename = "Create certificate authorities")]
    CreateCas,
    #[serde(rename = "Disable and reenable CAs")]
    DisableReenableCas,
    #[serde(rename = "Revoke issued leaf certificates")]
    RevokeLeaves,
}

impl CloudPkiPermission {
    pub const ALL: [CloudPkiPermission; 4] = [
        CloudPkiPermission::ReadCas,
        CloudPkiPermission::CreateCas,
        CloudPkiPermission::DisableReenableCas,
        CloudPkiPermission::RevokeLeaves,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CloudPkiPermission::ReadCas => "Read CAs",
            CloudPkiPermission::CreateCas => "Create certificate authorities",
            CloudPkiPermission::DisableReenableCas => "Disable and reenable CAs",
            CloudPkiPermission::RevokeLeaves => "Revoke issued leaf certificates",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name().eq_ignore_ascii_case(s.trim()))
    }
}

/// The built-in Entra role that holds every Cloud PKI permission on every scope tag.
pub const INTUNE_ADMINISTRATOR: &str = "Intune Administrator";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_come_from_scp_and_roles() {
        let c = Claims {
            iss: "i".into(),
            aud: AUDIENCE.into(),
            sub: "s".into(),
            exp: 0,
            nbf: 0,
            iat: 0,
            scp: Some("User.Read DeviceManagementCloudCA.Read.All".into()),
            roles: vec![],
        };
        assert!(c.can_read());
        assert!(!c.can_write());
        let app = Claims {
            scp: None,
            roles: vec!["DeviceManagementConfiguration.ReadWrite.All".into()],
            ..c.clone()
        };
        assert!(app.can_read() && app.can_write());
    }

    #[test]
    fn permission_names_round_trip() {
        for p in CloudPkiPermission::ALL {
            assert_eq!(CloudPkiPermission::parse(p.name()), Some(p));
            assert_eq!(serde_json::to_string(&p).unwrap(), format!("\"{}\"", p.name()));
        }
    }
}

/// What a verified caller may do.
#[derive(Debug, Clone)]
pub struct Access {
    pub claims: Claims,
    /// Holds the Intune Administrator role: every permission, every scope tag.
    pub administrator: bool,
    pub permissions: BTreeSet<CloudPkiPermission>,
    pub scope_tags: BTreeSet<String>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RbacError {
    #[error("unknown role {0:?}")]
    UnknownRole(String),
    #[error("unknown permission {0:?}; expected one of: Read CAs, Create certificate authorities, Disable and reenable CAs, Revoke issued leaf certificates")]
    UnknownPermission(String),
    #[error("the role name {0:?} is reserved")]
    Reserved(String),
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("stored role data is corrupt: {0}")]
    Corrupt(String),
}

fn tags_json(tags: &[String]) -> String {
    let tags: Vec<&str> = if tags.is_empty() {
        vec!["0"]
    } else {
        tags.iter().map(String::as_str).collect()
    };
    serde_json::to_string(&tags).unwrap_or_else(|_| "[\"0\"]".into())
}

/// Creates or replaces a custom role.
pub fn put_role(pki: &Pki, name: &str, permissions: &[String]) -> Result<Vec<CloudPkiPermission>, RbacError> {
    if name.eq_ignore_ascii_case(INTUNE_ADMINISTRATOR) {
        return Err(RbacError::Reserved(name.into()));
    }
    let perms = permissions
        .iter()
        .map(|p| CloudPkiPermission::parse(p).ok_or_else(|| RbacError::UnknownPermission(p.clone())))
        .collect::<Result<BTreeSet<_>, _>>()?;
    let perms: Vec<_> = perms.into_iter().collect();
    let mut tx = pki.store().begin(TxMode::Write)?;
    tx.put_role(
        name,
        &serde_json::to_string(&perms).map_err(|e| RbacError::Corrupt(e.to_string()))?,
    )?;
    tx.commit()?;
    Ok(perms)
}

/// Assigns a role (built-in Intune Administrator or a custom role) to a principal on scope tags.
pub fn assign(pki: &Pki, principal: &str, role: &str, scope_tags: &[String]) -> Result<(), RbacError> {
    let mut tx = pki.store().begin(TxMode::Write)?;
    let role = if role.eq_ignore_ascii_case(INTUNE_ADMINISTRATOR) {
        INTUNE_ADMINISTRATOR.to_owned()
    } else {
        tx.roles()?
            .into_iter()
            .find(|(n, _)| n == role)
            .map(|(n, _)| n)
            .ok_or_else(|| RbacError::UnknownRole(role.into()))?
    };
    tx.put_assignment(principal, &role, &tags_json(scope_tags))?;
    tx.commit()?;
    Ok(())
}

/// Custom roles as stored: (name, JSON permissions).
pub type RoleRows = Vec<(String, String)>;
/// Assignments as stored: (principal, role, JSON scope tags).
pub type AssignmentRows = Vec<(String, String, String)>;

/// Roles and assignments, for listing.
pub fn list(pki: &Pki) -> Result<(RoleRows, AssignmentRows), RbacError> {
    let mut tx = pki.store().begin(TxMode::Read)?;
    Ok((tx.roles()?, tx.assignments(None)?))
}

impl Access {
    /// Resolves a verified token's principal against its role assignments.
    pub fn resolve(pki: &Pki, claims: Claims) -> Result<Access, RbacError> {
        let mut tx = pki.store().begin(TxMode::Read)?;
        let roles = tx.roles()?;
        let mut access = Access {
            claims,
            administrator: false,
            permissions: BTreeSet::new(),
            scope_tags: BTreeSet::new(),
        };
        for (_, role, tags) in tx.assignments(Some(&access.claims.sub))? {
            if role == INTUNE_ADMINISTRATOR {
                access.administrator = true;
                continue;
            }
            let Some((_, perms)) = roles.iter().find(|(n, _)| *n == role) else {
                continue;
            };
            let perms: Vec<CloudPkiPermission> =
                serde_json::from_str(perms).map_err(|e| RbacError::Corrupt(e.to_string()))?;
            access.permissions.extend(perms);
            let tags: Vec<String> = serde_json::from_str(&tags).map_err(|e| RbacError::Corrupt(e.to_string()))?;
            access.scope_tags.extend(tags);
        }
        if access.administrator {
            access.permissions.extend(CloudPkiPermission::ALL);
        }
        Ok(access)
    }

    /// Holds every one of `perms`.
    pub fn has(&self, perms: &[CloudPkiPermission]) -> bool {
        perms.iter().all(|p| self.permissions.contains(p))
    }

    /// May act on an entity carrying these scope tags.
    pub fn sees(&self, tags: &[String]) -> bool {
        self.administrator || tags.iter().any(|t| self.scope_tags.contains(t))
    }
}
