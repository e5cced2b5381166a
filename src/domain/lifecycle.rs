//! Every lifecycle rule, in one place.
//!
//! [`check`] takes what is being attempted and the facts about the CA, and
//! returns either the effect (the status the CA moves to, or removal) or a
//! [`Refusal`] naming the rule that forbids it. The engine gathers the facts
//! inside the same transaction that applies the effect, so a decision can
//! never be made on stale facts.
//!
//! Rules (Intune Cloud PKI's documents; choices where they are silent marked *):
//! - pause: an active CA of any type stops issuing; CRL/AIA/OCSP keep answering.
//! - resume: a paused CA becomes active again.
//! - revoke: issuing CAs only, only once paused (*or expired), only when no
//!   active leaf remains; irreversible. A root is never revoked: it is deleted.
//! - delete: an issuing CA once revoked (*or expired, or still awaiting its
//!   external signature, having never issued anything); a root once no
//!   issuing CA anchored to it remains. Irreversible.
//! - upload of an externally signed certificate: only an external-root CA
//!   awaiting its signature.
//! - issuing a leaf: an active issuing CA. Creating an issuing CA: an active root.
//! - revoking a leaf: whatever the CA's state (*revoked and expired CAs
//!   included: more revocation information never hurts a relying party),
//!   except a CA that never had a certificate.

use super::model::{CaStatus, CaType};

/// What is being attempted on a CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    IssueLeaf,
    /// Create an issuing CA anchored to this CA.
    AnchorIssuingCa,
    Pause,
    Resume,
    Revoke,
    Delete,
    UploadSignedCertificate,
    RevokeLeaf,
}

impl Action {
    pub const ALL: [Action; 8] = [
        Action::IssueLeaf,
        Action::AnchorIssuingCa,
        Action::Pause,
        Action::Resume,
        Action::Revoke,
        Action::Delete,
        Action::UploadSignedCertificate,
        Action::RevokeLeaf,
    ];
}

/// The facts a decision depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    pub ca_type: CaType,
    /// The effective status (expired already derived from the clock).
    pub status: CaStatus,
    /// Leaves neither revoked nor expired.
    pub active_leaves: u64,
    /// Issuing CAs anchored to this CA and not deleted.
    pub anchored_cas: u64,
}

/// What an allowed action does to the CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The CA's status is unchanged.
    Stay,
    Become(CaStatus),
    Remove,
}

/// Why an action is refused. Each message names the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    #[error("a root CA issues only issuing CAs, not leaf certificates")]
    RootIssuesNoLeaves,
    #[error("only a root CA can anchor an issuing CA")]
    NotARoot,
    #[error("the CA is {0}: only an active CA issues certificates")]
    NotActive(&'static str),
    #[error("the CA is {0}: only an active CA can be paused")]
    CannotPause(&'static str),
    #[error("the CA is {0}: only a paused CA can be resumed")]
    NotPaused(&'static str),
    #[error("a root CA cannot be revoked; delete it once no issuing CA is anchored to it")]
    RootNotRevocable,
    #[error("the CA is {0}: pause the CA before revoking it")]
    PauseBeforeRevoke(&'static str),
    #[error("the CA is already revoked; revocation is permanent")]
    AlreadyRevoked,
    #[error("the CA has no certificate yet (signing pending); delete it instead")]
    NothingToRevoke,
    #[error("{0} active leaf certificate(s) remain: revoke every active leaf before revoking the CA")]
    ActiveLeavesRemain(u64),
    #[error("the CA is {0}: revoke an issuing CA before deleting it")]
    RevokeBeforeDelete(&'static str),
    #[error("{0} issuing CA(s) are anchored to this root: delete them first")]
    IssuingCasAnchored(u64),
    #[error("only a CA with an external root takes an externally signed certificate")]
    NotExternal,
    #[error("the CA is {0}: a signed certificate can be uploaded only while signing is pending")]
    NotSigningPending(&'static str),
    #[error("the CA has no certificate yet (signing pending), so it has no leaves")]
    NoLeavesYet,
    #[error("the responder was removed: its key is never trusted again; start it with a new key (delete its responder-key.p8) and approve the new request")]
    ResponderRemoved,
}

/// Where a keyless responder's request to sign OCSP answers with its own
/// key stands (see `domain::engine::edge`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponderStanding {
    /// Asked; nothing is issued to it.
    Requested,
    /// Approved by an operator: the signing leader keeps a delegated OCSP
    /// certificate per CA version for its key.
    Approved,
    /// Its certificates are no longer renewed and lapse within their short
    /// lifetime: how a lost responder key is contained.
    Removed,
}

/// What an operator does to a responder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponderAction {
    Approve,
    Remove,
}

/// Decides a responder action. Approving twice or removing twice changes
/// nothing; a removed responder is never approved again (its key may be
/// the lost one).
pub fn check_responder(action: ResponderAction, standing: ResponderStanding) -> Result<ResponderStanding, Refusal> {
    use ResponderStanding::*;
    match (action, standing) {
        (ResponderAction::Approve, Requested | Approved) => Ok(Approved),
        (ResponderAction::Approve, Removed) => Err(Refusal::ResponderRemoved),
        (ResponderAction::Remove, _) => Ok(Removed),
    }
}

/// Decides whether `action` may happen to a CA with these `facts`.
pub fn check(action: Action, facts: Facts) -> Result<Effect, Refusal> {
    use CaStatus::*;
    let Facts {
        ca_type,
        status,
        active_leaves,
        anchored_cas,
    } = facts;
    let is_root = ca_type == CaType::RootCertificationAuthority;
    match action {
        Action::IssueLeaf => {
            if is_root {
                Err(Refusal::RootIssuesNoLeaves)
            } else if status != Active {
                Err(Refusal::NotActive(status.name()))
            } else {
                Ok(Effect::Stay)
            }
        }
        Action::AnchorIssuingCa => {
            if !is_root {
                Err(Refusal::NotARoot)
            } else if status != Active {
                Err(Refusal::NotActive(status.name()))
            } else {
                Ok(Effect::Stay)
            }
        }
        Action::Pause => match status {
            Active => Ok(Effect::Become(Paused)),
            s => Err(Refusal::CannotPause(s.name())),
        },
        Action::Resume => match status {
            Paused => Ok(Effect::Become(Active)),
            s => Err(Refusal::NotPaused(s.name())),
        },
        Action::Revoke => {
            if is_root {
                return Err(Refusal::RootNotRevocable);
            }
            match status {
                Revoked => Err(Refusal::AlreadyRevoked),
                SigningPending => Err(Refusal::NothingToRevoke),
                Active => Err(Refusal::PauseBeforeRevoke(status.name())),
                Paused | Expired if active_leaves > 0 => Err(Refusal::ActiveLeavesRemain(active_leaves)),
                Paused | Expired => Ok(Effect::Become(Revoked)),
            }
        }
        Action::Delete => {
            if is_root {
                if anchored_cas > 0 {
                    Err(Refusal::IssuingCasAnchored(anchored_cas))
                } else {
                    Ok(Effect::Remove)
                }
            } else {
                match status {
                    Revoked | Expired | SigningPending => Ok(Effect::Remove),
                    s => Err(Refusal::RevokeBeforeDelete(s.name())),
                }
            }
        }
        Action::UploadSignedCertificate => {
            if ca_type != CaType::IssuingCertificationAuthorityWithExternalRoot {
                Err(Refusal::NotExternal)
            } else if status != SigningPending {
                Err(Refusal::NotSigningPending(status.name()))
            } else {
                Ok(Effect::Become(Active))
            }
        }
        Action::RevokeLeaf => match status {
            SigningPending => Err(Refusal::NoLeavesYet),
            _ => Ok(Effect::Stay),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CaStatus::*;
    use CaType::*;

    #[test]
    fn responder_transitions_table() {
        use ResponderAction::*;
        use ResponderStanding::*;
        let table = [
            (Approve, Requested, Ok(Approved)),
            (Approve, Approved, Ok(Approved)),
            (Approve, Removed, Err(Refusal::ResponderRemoved)),
            (Remove, Requested, Ok(Removed)),
            (Remove, Approved, Ok(Removed)),
            (Remove, Removed, Ok(Removed)),
        ];
        for (action, standing, want) in table {
            assert_eq!(check_responder(action, standing), want, "{action:?} on {standing:?}");
        }
    }

    const ROOT: CaType = RootCertificationAuthority;
    const ISS: CaType = IssuingCertificationAuthority;
    const EXT: CaType = IssuingCertificationAuthorityWithExternalRoot;

    /// Every allowed (type, status, action) with its effect, assuming no
    /// active leaves and no anchored CAs. Anything not listed is refused.
    const ALLOWED: &[(CaType, CaStatus, Action, Effect)] = &[
        // root
        (ROOT, Active, Action::AnchorIssuingCa, Effect::Stay),
        (ROOT, Active, Action::Pause, Effect::Become(Paused)),
        (ROOT, Paused, Action::Resume, Effect::Become(Active)),
        (ROOT, Active, Action::Delete, Effect::Remove),
        (ROOT, Paused, Action::Delete, Effect::Remove),
        (ROOT, Expired, Action::Delete, Effect::Remove),
        (ROOT, Revoked, Action::Delete, Effect::Remove),
        (ROOT, SigningPending, Action::Delete, Effect::Remove),
        (ROOT, Active, Action::RevokeLeaf, Effect::Stay),
        (ROOT, Paused, Action::RevokeLeaf, Effect::Stay),
        (ROOT, Revoked, Action::RevokeLeaf, Effect::Stay),
        (ROOT, Expired, Action::RevokeLeaf, Effect::Stay),
        // issuing, anchored to a root
        (ISS, Active, Action::IssueLeaf, Effect::Stay),
        (ISS, Active, Action::Pause, Effect::Become(Paused)),
        (ISS, Paused, Action::Resume, Effect::Become(Active)),
        (ISS, Paused, Action::Revoke, Effect::Become(Revoked)),
        (ISS, Expired, Action::Revoke, Effect::Become(Revoked)),
        (ISS, Revoked, Action::Delete, Effect::Remove),
        (ISS, Expired, Action::Delete, Effect::Remove),
        (ISS, SigningPending, Action::Delete, Effect::Remove),
        (ISS, Active, Action::RevokeLeaf, Effect::Stay),
        (ISS, Paused, Action::RevokeLeaf, Effect::Stay),
        (ISS, Revoked, Action::RevokeLeaf, Effect::Stay),
        (ISS, Expired, Action::RevokeLeaf, Effect::Stay),
        // issuing, signed by an external root
        (EXT, Active, Action::IssueLeaf, Effect::Stay),
        (EXT, Active, Action::Pause, Effect::Become(Paused)),
        (EXT, Paused, Action::Resume, Effect::Become(Active)),
        (EXT, Paused, Action::Revoke, Effect::Become(Revoked)),
        (EXT, Expired, Action::Revoke, Effect::Become(Revoked)),
        (EXT, Revoked, Action::Delete, Effect::Remove),
        (EXT, Expired, Action::Delete, Effect::Remove),
        (EXT, SigningPending, Action::Delete, Effect::Remove),
        (
            EXT,
            SigningPending,
            Action::UploadSignedCertificate,
            Effect::Become(Active),
        ),
        (EXT, Active, Action::RevokeLeaf, Effect::Stay),
        (EXT, Paused, Action::RevokeLeaf, Effect::Stay),
        (EXT, Revoked, Action::RevokeLeaf, Effect::Stay),
        (EXT, Expired, Action::RevokeLeaf, Effect::Stay),
    ];

    fn facts(ca_type: CaType, status: CaStatus) -> Facts {
        Facts {
            ca_type,
            status,
            active_leaves: 0,
            anchored_cas: 0,
        }
    }

    #[test]
    fn transition_table_is_exact() {
        let mut checked = 0;
        for t in CaType::ALL {
            for s in CaStatus::ALL {
                for a in Action::ALL {
                    let expected = ALLOWED
                        .iter()
                        .find(|(tt, ss, aa, _)| *tt == t && *ss == s && *aa == a)
                        .map(|row| row.3);
                    let got = check(a, facts(t, s));
                    match expected {
                        Some(effect) => {
                            assert_eq!(got, Ok(effect), "{t:?} {s:?} {a:?} should be allowed")
                        }
                        None => assert!(got.is_err(), "{t:?} {s:?} {a:?} should be refused, got {got:?}"),
                    }
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 3 * 5 * 8);
    }

    #[test]
    fn revoke_needs_no_active_leaves() {
        let f = Facts {
            active_leaves: 3,
            ..facts(ISS, Paused)
        };
        assert_eq!(check(Action::Revoke, f), Err(Refusal::ActiveLeavesRemain(3)));
        assert!(check(Action::Revoke, f)
            .unwrap_err()
            .to_string()
            .contains("revoke every active leaf"));
    }

    #[test]
    fn root_delete_needs_no_anchored_cas() {
        let f = Facts {
            anchored_cas: 2,
            ..facts(ROOT, Active)
        };
        assert_eq!(check(Action::Delete, f), Err(Refusal::IssuingCasAnchored(2)));
    }

    #[test]
    fn refusals_name_the_rule() {
        assert_eq!(
            check(Action::Revoke, facts(ISS, Active)),
            Err(Refusal::PauseBeforeRevoke("active"))
        );
        assert_eq!(
            check(Action::Revoke, facts(ROOT, Paused)),
            Err(Refusal::RootNotRevocable)
        );
        assert_eq!(
            check(Action::Delete, facts(ISS, Paused)),
            Err(Refusal::RevokeBeforeDelete("paused"))
        );
        assert_eq!(
            check(Action::IssueLeaf, facts(ISS, Paused)),
            Err(Refusal::NotActive("paused"))
        );
        assert_eq!(
            check(Action::IssueLeaf, facts(ROOT, Active)),
            Err(Refusal::RootIssuesNoLeaves)
        );
        assert_eq!(check(Action::Revoke, facts(ISS, Revoked)), Err(Refusal::AlreadyRevoked));
    }
}
