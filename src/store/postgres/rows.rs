//! Row codecs: one decoding per row kind, and the column lists they expect.

use super::*;

pub(super) fn map<T>(rows: &[Row], f: impl Fn(&Row) -> Result<T>) -> Result<Vec<T>> {
    rows.iter().map(f).collect()
}

pub(super) fn get<'a, T: FromSql<'a>>(r: &'a Row, i: usize) -> Result<T> {
    Ok(r.try_get(i)?)
}

pub(super) fn reason(r: &Row, i: usize) -> Result<Option<RevocationReason>> {
    crate::store::reason_from_column(get(r, i)?)
}

pub(super) fn count(r: &Row) -> Result<u64> {
    let n: i64 = get(r, 0)?;
    u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("count {n}")))
}

pub(super) const CA_COLUMNS: &str =
    "id, common_name, issuer_id, status, doc, cert, chain, csr, revoked_at, revocation_reason, \
                          row_version, crl_number, ocsp_sha1, ocsp_sha256, ocsp_this_update";

pub(super) fn presigned(r: &Row, first: usize) -> Result<Option<Presigned>> {
    let sha1: Option<Vec<u8>> = get(r, first)?;
    let sha256: Option<Vec<u8>> = get(r, first + 1)?;
    let this_update: Option<i64> = get(r, first + 2)?;
    Ok(match (sha1, sha256, this_update) {
        (Some(sha1), Some(sha256), Some(this_update)) => Some(Presigned {
            sha1,
            sha256,
            this_update,
        }),
        _ => None,
    })
}

pub(super) fn ca_row(r: &Row) -> Result<CaRow> {
    let chain: Option<Vec<u8>> = get(r, 6)?;
    Ok(CaRow {
        id: get(r, 0)?,
        common_name: get(r, 1)?,
        issuer_id: get(r, 2)?,
        status: get(r, 3)?,
        doc: get(r, 4)?,
        cert: get(r, 5)?,
        chain: split_chain(chain.as_deref().unwrap_or_default()),
        csr: get(r, 7)?,
        revoked_at: get(r, 8)?,
        revocation_reason: reason(r, 9)?,
        row_version: get(r, 10)?,
        crl_number: get(r, 11)?,
        ocsp: presigned(r, 12)?,
    })
}

pub(super) const LEAF_COLUMNS: &str =
    "seq, id, ca_id, serial, not_after, revoked_at, revocation_reason, doc, der, ocsp_sha1, ocsp_sha256, ocsp_this_update";
pub(super) const LEAF_STATUS_COLUMNS: &str =
    "seq, id, ca_id, serial, not_after, revoked_at, revocation_reason, ocsp_sha1, ocsp_sha256, ocsp_this_update";

pub(super) fn leaf_status_row(r: &Row) -> Result<LeafStatusRow> {
    Ok(LeafStatusRow {
        seq: get(r, 0)?,
        id: get(r, 1)?,
        ca_id: get(r, 2)?,
        serial: get(r, 3)?,
        not_after: get(r, 4)?,
        revoked_at: get(r, 5)?,
        revocation_reason: reason(r, 6)?,
        ocsp: presigned(r, 7)?,
    })
}

pub(super) fn leaf_row(r: &Row) -> Result<LeafRow> {
    Ok(LeafRow {
        seq: get(r, 0)?,
        id: get(r, 1)?,
        ca_id: get(r, 2)?,
        serial: get(r, 3)?,
        not_after: get(r, 4)?,
        revoked_at: get(r, 5)?,
        revocation_reason: reason(r, 6)?,
        doc: get(r, 7)?,
        der: get(r, 8)?,
        ocsp: presigned(r, 9)?,
    })
}

pub(super) fn audit_row(r: &Row) -> Result<AuditRow> {
    Ok(AuditRow {
        seq: get(r, 0)?,
        at: get(r, 1)?,
        actor: get(r, 2)?,
        activity: get(r, 3)?,
        target_type: get(r, 4)?,
        target_id: get(r, 5)?,
        result: get(r, 6)?,
        detail: get(r, 7)?,
        scope_tags: get(r, 8)?,
    })
}

pub(super) fn token_row(r: &Row) -> Result<TokenRow> {
    Ok(TokenRow {
        jti: get(r, 0)?,
        principal: get(r, 1)?,
        issued_at: get(r, 2)?,
        expires_at: get(r, 3)?,
        permissions: get(r, 4)?,
        revoked_at: get(r, 5)?,
        revoked_by: get(r, 6)?,
    })
}

/// Appends a leaf selection's conditions to `sql` (which ends in a WHERE
/// clause). PostgreSQL cannot leave a parameter unused, and a disjunction
/// like `$1 IS NULL OR ca_id = $1` defeats the indexes, so each selection
/// is a statement shape of its own (prepared once per connection).
pub(super) fn leaf_conditions<'a>(
    sql: &mut String,
    params: &mut Vec<&'a (dyn ToSql + Sync)>,
    ca_id: Option<&'a (dyn ToSql + Sync)>,
    filter: &'a LeafFilter,
) {
    if let Some(ca_id) = ca_id {
        params.push(ca_id);
        let _ = write!(sql, " AND ca_id = ${}", params.len());
    }
    match filter {
        LeafFilter::All => {}
        LeafFilter::Active { now } => {
            params.push(now);
            let _ = write!(sql, " AND revoked_at IS NULL AND not_after > ${}", params.len());
        }
        LeafFilter::Revoked => sql.push_str(" AND revoked_at IS NOT NULL"),
        LeafFilter::Expired { now } => {
            params.push(now);
            let _ = write!(sql, " AND revoked_at IS NULL AND not_after <= ${}", params.len());
        }
    }
}
