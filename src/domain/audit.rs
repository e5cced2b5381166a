//! Who did what: activity names (as Intune's audit log spells them) and the
//! acting principal.
//!
//! The principal is set for the duration of a call with [`with_actor`] (the
//! API sets the token's subject, the CLI the local user) and read by the
//! engine when it writes an audit event in the same transaction as the change.

use std::cell::RefCell;

pub const CREATE_CA: &str = "Create CloudCertificationAuthority";
pub const PATCH_CA: &str = "Patch CloudCertificationAuthority";
pub const DELETE_CA: &str = "Delete CloudCertificationAuthority";
pub const CHANGE_STATUS: &str = "ChangeCloudCertificationAuthorityStatusAsync CloudCertificationAuthority";
pub const REVOKE_CA: &str = "RevokeCloudCertificationAuthorityCertificateAsync CloudCertificationAuthority";
pub const UPLOAD: &str = "UploadExternallySignedCertificationAuthorityCertificateAsync CloudCertificationAuthority";
pub const REVOKE_LEAF: &str = "RevokeLeafCertAsync CloudCertificationAuthorityLeafCertificate";
/// Extensions (cloudpki's own actions).
pub const ISSUE_LEAF: &str = "IssueLeafCertificate CloudCertificationAuthorityLeafCertificate";
pub const PATCH_LEAF: &str = "Patch CloudCertificationAuthorityLeafCertificate";

thread_local! {
    static ACTOR: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs `f` with `actor` as the acting principal on this thread.
pub fn with_actor<T>(actor: &str, f: impl FnOnce() -> T) -> T {
    let previous = ACTOR.with(|a| a.replace(Some(actor.to_owned())));
    let out = f();
    ACTOR.with(|a| *a.borrow_mut() = previous);
    out
}

/// The acting principal: the one set by [`with_actor`], else the local user.
pub fn current_actor() -> String {
    ACTOR.with(|a| a.borrow().clone()).unwrap_or_else(|| {
        format!(
            "local:{}",
            std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                .unwrap_or_else(|_| "unknown".into())
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actor_is_scoped() {
        assert!(current_actor().starts_with("local:"));
        with_actor("alice", || {
            assert_eq!(current_actor(), "alice");
            with_actor("bob", || assert_eq!(current_actor(), "bob"));
            assert_eq!(current_actor(), "alice");
        });
        assert!(current_actor().starts_with("local:"));
    }
}
