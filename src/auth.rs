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
use crate::store::{TokenRow, TxMode};
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
    /// Why a token was refused, for logs; clients get [`AuthError::public_message`].
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("the token has expired")]
    Expired,
    #[error("token issuer key: {0}")]
    Key(String),
}

impl AuthError {
    /// What a client is told: never the JWT library's internals.
    pub fn public_message(&self) -> &'static str {
        match self {
            AuthError::Missing => "an Authorization: Bearer token is required",
            AuthError::Expired => "the bearer token has expired",
            AuthError::Invalid(_) | AuthError::Key(_) => {
                "the bearer token is not valid (signature, issuer, audience, lifetime or claims)"
            }
        }
    }

    fn from_jwt(e: jsonwebtoken::errors::Error) -> Self {
        match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
            _ => AuthError::Invalid(e.to_string()),
        }
    }
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
    /// The token's id, by which it can be revoked before it expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
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
            .map_err(AuthError::from_jwt)?
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
            // Entra ID names its token id `uti`.
            jti: ["jti", "uti"]
                .iter()
                .find_map(|k| c.rest.get(*k).and_then(serde_json::Value::as_str))
                .map(str::to_owned),
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

    /// Mints a token for `principal` valid `ttl` seconds, with a fresh id;
    /// the caller records the returned row (see [`mint`]) before handing it out.
    pub fn issue(
        &self,
        principal: &str,
        scopes: &[String],
        roles: &[String],
        ttl: i64,
    ) -> Result<(String, TokenRow), AuthError> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let jti = uuid::Uuid::new_v4().to_string();
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: AUDIENCE.into(),
            sub: principal.into(),
            exp: now + ttl,
            nbf: now - 60,
            iat: now,
            jti: Some(jti.clone()),
            scp: if scopes.is_empty() {
                None
            } else {
                Some(scopes.join(" "))
            },
            roles: roles.to_vec(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &self.encoding)
            .map_err(|e| AuthError::Invalid(e.to_string()))?;
        let mut permissions: Vec<&str> = scopes.iter().chain(roles).map(String::as_str).collect();
        permissions.dedup();
        Ok((
            token,
            TokenRow {
                jti,
                principal: principal.into(),
                issued_at: now,
                expires_at: now + ttl,
                permissions: permissions.join(" "),
                revoked_at: None,
                revoked_by: None,
            },
        ))
    }

    /// Verifies signature, `exp`/`nbf`, issuer and audience, with the key of
    /// the issuer the token names (ours or a configured external one).
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        // The unverified `iss` only picks the key; the chosen issuer's checks decide.
        let iss = jsonwebtoken::dangerous::insecure_decode_claims::<IssuerOnly>(token)
            .map_err(AuthError::from_jwt)?
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
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &v)
            .map(|d| d.claims)
            .map_err(AuthError::from_jwt)?;
        // Every token we mint has an id (the deny list needs one); tokens
        // minted before ids existed cannot be revoked, so they are refused.
        if claims.jti.as_deref().is_none_or(str::is_empty) {
            return Err(AuthError::Invalid("token without jti".into()));
        }
        Ok(claims)
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
    /// cloudpki's own: enrolment profiles and challenges (SCEP).
    #[serde(rename = "Manage enrolment profiles and challenges")]
    ManageEnrolment,
}

impl CloudPkiPermission {
    pub const ALL: [CloudPkiPermission; 5] = [
        CloudPkiPermission::ReadCas,
        CloudPkiPermission::CreateCas,
        CloudPkiPermission::DisableReenableCas,
        CloudPkiPermission::RevokeLeaves,
        CloudPkiPermission::ManageEnrolment,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CloudPkiPermission::ReadCas => "Read CAs",
            CloudPkiPermission::CreateCas => "Create certificate authorities",
            CloudPkiPermission::DisableReenableCas => "Disable and reenable CAs",
            CloudPkiPermission::RevokeLeaves => "Revoke issued leaf certificates",
            CloudPkiPermission::ManageEnrolment => "Manage enrolment profiles and challenges",
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
            jti: None,
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

/// One role assignment as it applies: the permissions of its role, on its scope tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub permissions: BTreeSet<CloudPkiPermission>,
    pub scope_tags: BTreeSet<String>,
}

/// What a verified caller may do.
///
/// Intune's model is per assignment: a permission applies only on the scope
/// tags of the assignment that grants it. So the grants are kept apart and
/// every (permission, resource) pair is decided from the grants that hold
/// that permission; permissions and tags are never pooled.
#[derive(Debug, Clone)]
pub struct Access {
    pub claims: Claims,
    /// Holds the Intune Administrator role: every permission, every scope tag.
    pub administrator: bool,
    pub grants: Vec<Grant>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RbacError {
    #[error("unknown role {0:?}")]
    UnknownRole(String),
    #[error("unknown permission {0:?}; expected one of: Read CAs, Create certificate authorities, Disable and reenable CAs, Revoke issued leaf certificates, Manage enrolment profiles and challenges")]
    UnknownPermission(String),
    #[error("the role name {0:?} is reserved")]
    Reserved(String),
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("stored role data is corrupt: {0}")]
    Corrupt(String),
    #[error("the token was revoked")]
    TokenRevoked,
    #[error("a token id is 1 to 256 characters")]
    BadTokenId,
    #[error("{0}")]
    Token(#[from] AuthError),
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

/// Mints a token and records it (so it can be listed and revoked) in one step.
pub fn mint(
    pki: &Pki,
    issuer: &TokenIssuer,
    principal: &str,
    scopes: &[String],
    roles: &[String],
    ttl: i64,
) -> Result<(String, TokenRow), RbacError> {
    let (token, row) = issuer.issue(principal, scopes, roles, ttl)?;
    let mut tx = pki.store().begin(TxMode::Write)?;
    tx.put_token(&row)?;
    tx.commit()?;
    Ok((token, row))
}

/// Tokens not yet expired (and ids revoked without a known expiry).
pub fn list_tokens(pki: &Pki) -> Result<Vec<TokenRow>, RbacError> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    Ok(pki.store().begin(TxMode::Read)?.tokens(now)?)
}

/// Puts a token id on the deny list: every node refuses it from its next
/// request on (the list is read from the store on each request). False when
/// it already was revoked.
pub fn revoke_token(pki: &Pki, jti: &str, by: &str) -> Result<bool, RbacError> {
    let jti = jti.trim();
    if jti.is_empty() || jti.len() > 256 {
        return Err(RbacError::BadTokenId);
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut tx = pki.store().begin(TxMode::Write)?;
    let fresh = tx.revoke_token(jti, now, by)?;
    tx.commit()?;
    Ok(fresh)
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
    /// Resolves a verified token's principal against its role assignments,
    /// refusing a token whose id is on the deny list.
    pub fn resolve(pki: &Pki, claims: Claims) -> Result<Access, RbacError> {
        let mut tx = pki.store().begin(TxMode::Read)?;
        if let Some(jti) = &claims.jti {
            if tx.token_revoked(jti)? {
                return Err(RbacError::TokenRevoked);
            }
        }
        let roles = tx.roles()?;
        let mut access = Access {
            claims,
            administrator: false,
            grants: Vec::new(),
        };
        for (_, role, tags) in tx.assignments(Some(&access.claims.sub))? {
            if role == INTUNE_ADMINISTRATOR {
                access.administrator = true;
                continue;
            }
            let Some((_, perms)) = roles.iter().find(|(n, _)| *n == role) else {
                continue;
            };
            let permissions: BTreeSet<CloudPkiPermission> =
                serde_json::from_str(perms).map_err(|e| RbacError::Corrupt(e.to_string()))?;
            let scope_tags: BTreeSet<String> =
                serde_json::from_str(&tags).map_err(|e| RbacError::Corrupt(e.to_string()))?;
            access.grants.push(Grant {
                permissions,
                scope_tags,
            });
        }
        Ok(access)
    }

    /// Holds `perm` on at least one scope tag (says nothing about a given resource).
    pub fn holds(&self, perm: CloudPkiPermission) -> bool {
        self.administrator || self.grants.iter().any(|g| g.permissions.contains(&perm))
    }

    /// May exercise `perm` on a resource carrying `tags`: some assignment
    /// grants `perm` on one of them.
    pub fn allows(&self, perm: CloudPkiPermission, tags: &[String]) -> bool {
        self.administrator
            || self
                .grants
                .iter()
                .any(|g| g.permissions.contains(&perm) && tags.iter().any(|t| g.scope_tags.contains(t)))
    }

    /// May exercise every one of `perms` on a resource carrying `tags`
    /// (each decided on its own grants).
    pub fn allows_all(&self, perms: &[CloudPkiPermission], tags: &[String]) -> bool {
        perms.iter().all(|p| self.allows(*p, tags))
    }

    /// May give a resource exactly these tags: every one of them is a tag on
    /// which an assignment grants `perm` (you hand out only the tags you hold).
    pub fn may_assign(&self, perm: CloudPkiPermission, tags: &[String]) -> bool {
        self.administrator
            || tags.iter().all(|t| {
                self.grants
                    .iter()
                    .any(|g| g.permissions.contains(&perm) && g.scope_tags.contains(t))
            })
    }

    /// May see a resource (or an audit event) carrying `tags`: "Read CAs" on one of them.
    pub fn sees(&self, tags: &[String]) -> bool {
        self.allows(CloudPkiPermission::ReadCas, tags)
    }
}

#[cfg(test)]
mod access_tests {
    use super::CloudPkiPermission as P;
    use super::*;

    fn access(grants: &[(&[P], &[&str])]) -> Access {
        Access {
            claims: Claims {
                iss: "i".into(),
                aud: AUDIENCE.into(),
                sub: "s".into(),
                exp: 0,
                nbf: 0,
                iat: 0,
                jti: None,
                scp: None,
                roles: vec![],
            },
            administrator: false,
            grants: grants
                .iter()
                .map(|(p, t)| Grant {
                    permissions: p.iter().copied().collect(),
                    scope_tags: t.iter().map(|s| (*s).to_owned()).collect(),
                })
                .collect(),
        }
    }

    fn tags(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn role_assignments_are_not_merged_across_scope_tags() {
        // Read on 7, revoke on 0: revoking on a tag-7 CA is not allowed.
        let a = access(&[(&[P::ReadCas], &["7"]), (&[P::RevokeLeaves], &["0"])]);
        assert!(a.sees(&tags(&["7"])));
        assert!(!a.allows(P::RevokeLeaves, &tags(&["7"])));
        assert!(!a.allows_all(&[P::ReadCas, P::RevokeLeaves], &tags(&["7"])));
        assert!(!a.sees(&tags(&["0"])), "revoke on 0 does not open reading on 0");
        assert!(a.allows(P::RevokeLeaves, &tags(&["0"])));
        // A CA carrying both tags: each permission is found on its own assignment.
        assert!(a.allows_all(&[P::ReadCas, P::RevokeLeaves], &tags(&["0", "7"])));
        assert!(a.holds(P::RevokeLeaves) && !a.holds(P::CreateCas));
    }

    #[test]
    fn assigning_tags_needs_the_permission_on_each_tag() {
        let a = access(&[(&[P::ReadCas, P::CreateCas], &["1"]), (&[P::ReadCas], &["2"])]);
        assert!(a.may_assign(P::CreateCas, &tags(&["1"])));
        assert!(!a.may_assign(P::CreateCas, &tags(&["1", "2"])), "no Create on tag 2");
        assert!(!a.may_assign(P::CreateCas, &tags(&["3"])));
        let admin = Access {
            administrator: true,
            ..access(&[])
        };
        assert!(admin.may_assign(P::CreateCas, &tags(&["99"])) && admin.allows(P::RevokeLeaves, &tags(&["x"])));
    }
}
