//! Row codecs: one decoding per row kind, and the column lists they expect.

use super::*;

pub(super) fn map<T>(rows: &[Row], f: impl Fn(&Row) -> Result<T>) -> Result<Vec<T>> {
    rows.iter().map(f).collect()
}

pub(super) fn get<'a, T: FromSql<'a>>(r: &'a Row, i: usize) -> Result<T> {
    Ok(r.try_get(i)?)
}

/// A stored CRL partition number (BIGINT on PostgreSQL).
pub(super) fn partition(n: i64) -> Result<u32> {
    u32::try_from(n).map_err(|_| StoreError::Corrupt(format!("CRL partition {n}")))
}

pub(super) fn count(r: &Row) -> Result<u64> {
    let n: i64 = get(r, 0)?;
    u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("count {n}")))
}

use crate::store::rows::{Columns, Value};
pub(super) use crate::store::rows::{CA_COLUMNS, LEAF_COLUMNS, LEAF_STATUS_COLUMNS};

impl Columns for Row {
    fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        get(self, i)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        get(self, i)
    }
    fn opt_bytes(&self, i: usize) -> Result<Option<Vec<u8>>> {
        get(self, i)
    }
}

pub(super) fn ca_row(r: &Row) -> Result<CaRow> {
    crate::store::rows::ca_row(r)
}

pub(super) fn leaf_row(r: &Row) -> Result<LeafRow> {
    crate::store::rows::leaf_row(r)
}

pub(super) fn leaf_status_row(r: &Row) -> Result<LeafStatusRow> {
    crate::store::rows::leaf_status_row(r)
}

pub(super) fn audit_row(r: &Row) -> Result<AuditRow> {
    crate::store::rows::audit_row(r)
}

/// Values to bind, boxed for the client's `&dyn ToSql` parameters.
pub(super) fn boxed(values: Vec<Value>) -> Vec<Box<dyn ToSql + Sync>> {
    values
        .into_iter()
        .map(|v| -> Box<dyn ToSql + Sync> {
            match v {
                Value::Int(x) => Box::new(x),
                Value::Text(x) => Box::new(x),
                Value::Bytes(x) => Box::new(x),
            }
        })
        .collect()
}

pub(super) fn refs(values: &[Box<dyn ToSql + Sync>]) -> Vec<&(dyn ToSql + Sync)> {
    values.iter().map(|b| b.as_ref()).collect()
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
