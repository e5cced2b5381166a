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
/// Key-encryption key rotation (`cloudpki kek rotate`): read by administrators only.
pub const ENROL: &str = "Enrol CloudCertificationAuthorityLeafCertificate";
pub const CREATE_PROFILE: &str = "Create EnrolmentProfile";
pub const REMOVE_PROFILE: &str = "Delete EnrolmentProfile";
pub const CREATE_CHALLENGE: &str = "Create EnrolmentChallenge";
pub const KEK_ROTATION_STARTED: &str = "kekRotationStarted";
pub const KEK_ROTATION_COMPLETED: &str = "kekRotationCompleted";

/// The readable name of every activity type, as Intune's audit log shows
/// `activity` beside `activityType`. The one table: an activity constant
/// above without a row here fails `every_activity_has_a_readable_name`.
const ACTIVITY_NAMES: &[(&str, &str)] = &[
    (CREATE_CA, "Create certification authority"),
    (PATCH_CA, "Update certification authority"),
    (DELETE_CA, "Delete certification authority"),
    (CHANGE_STATUS, "Change certification authority status"),
    (REVOKE_CA, "Revoke certification authority certificate"),
    (UPLOAD, "Upload externally signed certification authority certificate"),
    (REVOKE_LEAF, "Revoke leaf certificate"),
    (ISSUE_LEAF, "Issue leaf certificate"),
    (PATCH_LEAF, "Update leaf certificate"),
    (ENROL, "Enrol a device (SCEP)"),
    (CREATE_PROFILE, "Create enrolment profile"),
    (REMOVE_PROFILE, "Delete enrolment profile"),
    (CREATE_CHALLENGE, "Create enrolment challenge"),
    (KEK_ROTATION_STARTED, "Start key-encryption key rotation"),
    (KEK_ROTATION_COMPLETED, "Complete key-encryption key rotation"),
];

/// The readable activity for an activity type (the type itself for one this
/// version does not know, e.g. written by a newer node).
pub fn activity_name(activity_type: &str) -> &str {
    ACTIVITY_NAMES
        .iter()
        .find(|(t, _)| *t == activity_type)
        .map_or(activity_type, |(_, name)| name)
}

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
    fn every_activity_has_a_readable_name() {
        // Every `pub const …: &str = "…";` of this file is an activity type.
        let source = include_str!("audit.rs");
        let types: Vec<&str> = source
            .lines()
            .filter(|l| l.starts_with("pub const ") && l.contains(": &str = \""))
            .filter_map(|l| l.split('"').nth(1))
            .collect();
        assert!(types.len() >= 11, "{types:?}");
        for t in types {
            let name = activity_name(t);
            assert_ne!(name, t, "{t} has no readable name in ACTIVITY_NAMES");
            assert!(name.starts_with(char::is_uppercase) && name.contains(' '), "{name}");
        }
    }

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
