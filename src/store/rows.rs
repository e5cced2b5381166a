//! The row codecs both backends share: which columns a row kind has, how a
//! row is read from them and which values it writes. The backends differ
//! only in how they bind a value and read a column ([`Columns`], [`Value`])
//! and in the placeholder syntax ([`Dialect`]).

use super::{
    AuditRow, CaRow, LeafCursor, LeafOrder, LeafPage, LeafRow, LeafStatusRow, Presigned, Result, RevocationReason,
    SortKey, StoreError,
};

/// A value to bind, typed even when null (PostgreSQL wants the type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Int(Option<i64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
}

/// Reads one row's columns by position; each backend implements it once.
pub(crate) trait Columns {
    fn opt_int(&self, i: usize) -> Result<Option<i64>>;
    fn opt_text(&self, i: usize) -> Result<Option<String>>;
    fn opt_bytes(&self, i: usize) -> Result<Option<Vec<u8>>>;
}

/// Walks a row's columns in order, so a decoder cannot get an index wrong.
struct Cursor<'a> {
    row: &'a dyn Columns,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn new(row: &'a dyn Columns) -> Self {
        Cursor { row, at: 0 }
    }

    fn next(&mut self) -> usize {
        self.at += 1;
        self.at - 1
    }

    fn missing(&self, i: usize) -> StoreError {
        StoreError::Corrupt(format!("column {i} is null"))
    }

    fn opt_int(&mut self) -> Result<Option<i64>> {
        let i = self.next();
        self.row.opt_int(i)
    }

    fn int(&mut self) -> Result<i64> {
        let i = self.next();
        self.row.opt_int(i)?.ok_or_else(|| self.missing(i))
    }

    fn opt_text(&mut self) -> Result<Option<String>> {
        let i = self.next();
        self.row.opt_text(i)
    }

    fn text(&mut self) -> Result<String> {
        let i = self.next();
        self.row.opt_text(i)?.ok_or_else(|| self.missing(i))
    }

    fn list(&mut self) -> Result<Vec<String>> {
        Ok(split_list(self.opt_text()?.as_deref().unwrap_or_default()))
    }

    fn opt_bytes(&mut self) -> Result<Option<Vec<u8>>> {
        let i = self.next();
        self.row.opt_bytes(i)
    }

    fn bytes(&mut self) -> Result<Vec<u8>> {
        let i = self.next();
        self.row.opt_bytes(i)?.ok_or_else(|| self.missing(i))
    }

    fn reason(&mut self) -> Result<Option<RevocationReason>> {
        super::reason_from_column(self.opt_int()?)
    }

    fn presigned(&mut self) -> Result<Option<Presigned>> {
        Ok(
            match (self.opt_bytes()?, self.opt_bytes()?, self.opt_int()?, self.opt_int()?) {
                (Some(sha1), sha256, Some(this_update), next_update) => Some(Presigned {
                    sha1,
                    sha256: sha256.filter(|a| !a.is_empty()),
                    this_update,
                    next_update,
                }),
                _ => None,
            },
        )
    }
}

/// Placeholder syntax: SQLite's `?N` or PostgreSQL's `$N` (both 1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    pub(crate) fn param(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("${n}"),
        }
    }
}

/// Lists (OIDs, scope tag ids, keyUsage names) are stored as text, items
/// separated by a space; `%` and a space inside an item are escaped as `%25`
/// and `%20`, so any string survives (a scope tag written by an earlier
/// release may hold spaces).
pub(crate) fn join_list(items: &[String]) -> String {
    items
        .iter()
        .map(|i| i.replace('%', "%25").replace(' ', "%20"))
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn split_list(s: &str) -> Vec<String> {
    s.split(' ')
        .filter(|i| !i.is_empty())
        .map(|i| i.replace("%20", " ").replace("%25", "%"))
        .collect()
}

/// Chains are stored as length-prefixed DER blobs (4-byte big-endian length).
pub(crate) fn join_chain(chain: &[Vec<u8>]) -> Option<Vec<u8>> {
    if chain.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for c in chain {
        out.extend_from_slice(&(c.len() as u32).to_be_bytes());
        out.extend_from_slice(c);
    }
    Some(out)
}

pub(crate) fn split_chain(mut blob: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while blob.len() >= 4 {
        let len = u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]) as usize;
        let Some(cert) = blob.get(4..4 + len) else {
            break;
        };
        out.push(cert.to_vec());
        blob = &blob[4 + len..];
    }
    out
}

fn text(s: &str) -> Value {
    Value::Text(Some(s.to_owned()))
}

fn opt_text(s: &Option<String>) -> Value {
    Value::Text(s.clone())
}

fn int(n: i64) -> Value {
    Value::Int(Some(n))
}

fn presigned_values(p: &Option<Presigned>) -> [(&'static str, Value); 4] {
    [
        ("ocsp_sha1", Value::Bytes(p.as_ref().map(|o| o.sha1.clone()))),
        (
            "ocsp_sha256",
            Value::Bytes(p.as_ref().map(|o| o.stored_sha256().to_vec())),
        ),
        ("ocsp_this_update", Value::Int(p.as_ref().map(|o| o.this_update))),
        ("ocsp_next_update", Value::Int(p.as_ref().and_then(|o| o.next_update))),
    ]
}

// ------------------------------------------------------------------ CAs

/// Columns [`ca_row`] reads, in its order.
pub(crate) const CA_COLUMNS: &str = "id, ca_type, display_name, description, issuer_id, status, common_name, \
     organization_name, organization_unit, country_name, state_name, locality_name, subject_name, key_algorithm, \
     hash_algorithm, key_platform, validity_years, ekus, scope_tags, created_at, modified_at, version_number, \
     issuer_common_name, root_common_name, issuer_cert_url, cert, chain, csr, revoked_at, revocation_reason, \
     row_version, crl_number, ocsp_sha1, ocsp_sha256, ocsp_this_update, ocsp_next_update, crl_partitions, delta_crls";

pub(crate) fn ca_row(r: &dyn Columns) -> Result<CaRow> {
    let mut c = Cursor::new(r);
    Ok(CaRow {
        id: c.text()?,
        ca_type: c.text()?,
        display_name: c.text()?,
        description: c.opt_text()?,
        issuer_id: c.opt_text()?,
        status: c.text()?,
        common_name: c.text()?,
        organization_name: c.opt_text()?,
        organization_unit: c.opt_text()?,
        country_name: c.opt_text()?,
        state_name: c.opt_text()?,
        locality_name: c.opt_text()?,
        subject_name: c.text()?,
        key_algorithm: c.text()?,
        hash_algorithm: c.text()?,
        key_platform: c.text()?,
        validity_years: c.int()?,
        ekus: c.list()?,
        scope_tags: c.list()?,
        created_at: c.int()?,
        modified_at: c.int()?,
        version: c.int()?,
        issuer_common_name: c.opt_text()?,
        root_common_name: c.opt_text()?,
        issuer_cert_url: c.opt_text()?,
        cert: c.opt_bytes()?,
        chain: split_chain(c.opt_bytes()?.as_deref().unwrap_or_default()),
        csr: c.opt_bytes()?,
        revoked_at: c.opt_int()?,
        revocation_reason: c.reason()?,
        row_version: c.int()?,
        crl_number: c.int()?,
        ocsp: c.presigned()?,
        crl_partitions: c.int()?,
        delta_crls: c.int()? != 0,
    })
}

/// What an insert or an update of a CA writes (not the key, the CRL number
/// or the creation order, which have operations of their own).
pub(crate) fn ca_values(row: &CaRow) -> Vec<(&'static str, Value)> {
    let mut v = vec![
        ("ca_type", text(&row.ca_type)),
        ("display_name", text(&row.display_name)),
        ("description", opt_text(&row.description)),
        ("issuer_id", opt_text(&row.issuer_id)),
        ("status", text(&row.status)),
        ("common_name", text(&row.common_name)),
        ("organization_name", opt_text(&row.organization_name)),
        ("organization_unit", opt_text(&row.organization_unit)),
        ("country_name", opt_text(&row.country_name)),
        ("state_name", opt_text(&row.state_name)),
        ("locality_name", opt_text(&row.locality_name)),
        ("subject_name", text(&row.subject_name)),
        ("key_algorithm", text(&row.key_algorithm)),
        ("hash_algorithm", text(&row.hash_algorithm)),
        ("key_platform", text(&row.key_platform)),
        ("validity_years", int(row.validity_years)),
        ("ekus", text(&join_list(&row.ekus))),
        ("scope_tags", text(&join_list(&row.scope_tags))),
        ("created_at", int(row.created_at)),
        ("modified_at", int(row.modified_at)),
        ("version_number", int(row.version)),
        ("issuer_common_name", opt_text(&row.issuer_common_name)),
        ("root_common_name", opt_text(&row.root_common_name)),
        ("issuer_cert_url", opt_text(&row.issuer_cert_url)),
        ("cert", Value::Bytes(row.cert.clone())),
        ("chain", Value::Bytes(join_chain(&row.chain))),
        ("csr", Value::Bytes(row.csr.clone())),
        ("revoked_at", Value::Int(row.revoked_at)),
        (
            "revocation_reason",
            Value::Int(row.revocation_reason.map(|r| i64::from(r.code()))),
        ),
        ("row_version", int(row.row_version)),
        ("crl_partitions", int(row.crl_partitions)),
        ("delta_crls", int(i64::from(row.delta_crls))),
    ];
    v.extend(presigned_values(&row.ocsp));
    v
}

/// `INSERT INTO table (c1, ...) VALUES (p1, ...)` for these values, the
/// extra columns first; returns the statement and the values in bind order.
pub(crate) fn insert_sql(dialect: Dialect, table: &str, values: Vec<(&'static str, Value)>) -> (String, Vec<Value>) {
    let names: Vec<&str> = values.iter().map(|(n, _)| *n).collect();
    let params: Vec<String> = (1..=values.len()).map(|n| dialect.param(n)).collect();
    (
        format!(
            "INSERT INTO {table} ({}) VALUES ({})",
            names.join(", "),
            params.join(", ")
        ),
        values.into_iter().map(|(_, v)| v).collect(),
    )
}

/// `UPDATE cas SET ... WHERE id = ? AND live AND row_version = previous`.
pub(crate) fn update_ca_sql(dialect: Dialect, row: &CaRow) -> (String, Vec<Value>) {
    let values = ca_values(row);
    let sets: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, (n, _))| format!("{n} = {}", dialect.param(i + 1)))
        .collect();
    let n = values.len();
    let sql = format!(
        "UPDATE cas SET {} WHERE id = {} AND deleted_at IS NULL AND row_version = {}",
        sets.join(", "),
        dialect.param(n + 1),
        dialect.param(n + 2)
    );
    let mut binds: Vec<Value> = values.into_iter().map(|(_, v)| v).collect();
    binds.push(text(&row.id));
    binds.push(int(row.row_version - 1));
    (sql, binds)
}

// --------------------------------------------------------------- leaves

/// Columns [`leaf_row`] reads, in its order.
pub(crate) const LEAF_COLUMNS: &str = "seq, id, ca_id, ca_version, serial, subject_name, issuer_name, not_before, \
     not_after, thumbprint, revoked_at, revocation_reason, device_name, user_principal_name, device_id, user_id, \
     device_platform, key_usages, ekus, der, ocsp_sha1, ocsp_sha256, ocsp_this_update, ocsp_next_update, crl_partition";

pub(crate) fn leaf_row(r: &dyn Columns) -> Result<LeafRow> {
    let mut c = Cursor::new(r);
    Ok(LeafRow {
        seq: c.int()?,
        id: c.text()?,
        ca_id: c.text()?,
        ca_version: c.int()?,
        serial: c.text()?,
        subject_name: c.text()?,
        issuer_name: c.text()?,
        not_before: c.int()?,
        not_after: c.int()?,
        thumbprint: c.text()?,
        revoked_at: c.opt_int()?,
        revocation_reason: c.reason()?,
        device_name: c.opt_text()?,
        user_principal_name: c.opt_text()?,
        device_id: c.opt_text()?,
        user_id: c.opt_text()?,
        device_platform: c.text()?,
        key_usages: c.list()?,
        ekus: c.list()?,
        der: c.bytes()?,
        ocsp: c.presigned()?,
        crl_partition: c.int()?,
    })
}

/// What inserting a leaf writes (`seq` is the store's).
pub(crate) fn leaf_values(row: &LeafRow) -> Vec<(&'static str, Value)> {
    let mut v = vec![
        ("id", text(&row.id)),
        ("ca_id", text(&row.ca_id)),
        ("ca_version", int(row.ca_version)),
        ("serial", text(&row.serial)),
        ("subject_name", text(&row.subject_name)),
        // The subjectName sort key: ASCII case folded, as SQL lower() folds.
        ("subject_key", text(&row.subject_name.to_ascii_lowercase())),
        ("issuer_name", text(&row.issuer_name)),
        ("not_before", int(row.not_before)),
        ("not_after", int(row.not_after)),
        ("thumbprint", text(&row.thumbprint)),
        ("revoked_at", Value::Int(row.revoked_at)),
        (
            "revocation_reason",
            Value::Int(row.revocation_reason.map(|r| i64::from(r.code()))),
        ),
        ("device_name", opt_text(&row.device_name)),
        ("user_principal_name", opt_text(&row.user_principal_name)),
        ("device_id", opt_text(&row.device_id)),
        ("user_id", opt_text(&row.user_id)),
        ("device_platform", text(&row.device_platform)),
        ("key_usages", text(&join_list(&row.key_usages))),
        ("ekus", text(&join_list(&row.ekus))),
        ("der", Value::Bytes(Some(row.der.clone()))),
        ("crl_partition", int(row.crl_partition)),
    ];
    v.extend(presigned_values(&row.ocsp));
    v
}

/// Columns [`leaf_status_row`] reads, in its order.
pub(crate) const LEAF_STATUS_COLUMNS: &str =
    "seq, id, ca_id, serial, not_after, revoked_at, revocation_reason, ocsp_sha1, ocsp_sha256, ocsp_this_update, ocsp_next_update, \
     crl_partition";

pub(crate) fn leaf_status_row(r: &dyn Columns) -> Result<LeafStatusRow> {
    let mut c = Cursor::new(r);
    Ok(LeafStatusRow {
        seq: c.int()?,
        id: c.text()?,
        ca_id: c.text()?,
        serial: c.text()?,
        not_after: c.int()?,
        revoked_at: c.opt_int()?,
        revocation_reason: c.reason()?,
        ocsp: c.presigned()?,
        crl_partition: u32::try_from(c.int()?).map_err(|_| StoreError::Corrupt("negative CRL partition".into()))?,
    })
}

// ------------------------------------------------------- ordered pages

/// The column (or expression) a segment sorts on, `seq` breaking ties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortColumn {
    Seq,
    SubjectLower,
    NotBefore,
    NotAfter,
    RevokedAt,
}

/// Which leaves by status, as of `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatusCond {
    Active,
    Expired,
    Revoked,
}

/// One index range of an ordered page: a page walks the segments of its
/// plan in turn (several only when ordering by status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    ca_id: String,
    rank: u8,
    column: SortColumn,
    /// Admitted statuses, OR-ed; empty: all.
    statuses: Vec<StatusCond>,
    now: i64,
    descending: bool,
    after: Option<(SortKey, i64)>,
}

/// The segments a page reads, in order. Ordering by status reads up to
/// three (active by notAfter, expired by notAfter, revoked by revocation
/// time), each on an index, skipping those before the cursor.
pub(crate) fn leaf_page_plan(p: &LeafPage) -> Vec<Segment> {
    let st = p.statuses;
    let admitted: Vec<StatusCond> = [
        (st.active, StatusCond::Active),
        (st.expired, StatusCond::Expired),
        (st.revoked, StatusCond::Revoked),
    ]
    .into_iter()
    .filter_map(|(on, c)| on.then_some(c))
    .collect();
    if admitted.is_empty() {
        return Vec::new();
    }
    let segment = |rank: u8, column, statuses: Vec<StatusCond>| Segment {
        ca_id: p.ca_id.clone(),
        rank,
        column,
        statuses,
        now: st.now,
        descending: p.descending,
        after: p
            .after
            .as_ref()
            .filter(|c| c.rank == rank)
            .map(|c| (c.key.clone(), c.seq)),
    };
    let column = match p.order {
        LeafOrder::Issued => SortColumn::Seq,
        LeafOrder::Subject => SortColumn::SubjectLower,
        LeafOrder::NotBefore => SortColumn::NotBefore,
        LeafOrder::NotAfter => SortColumn::NotAfter,
        LeafOrder::Status => {
            let mut plan: Vec<Segment> = admitted
                .iter()
                .map(|c| match c {
                    StatusCond::Active => segment(0, SortColumn::NotAfter, vec![*c]),
                    StatusCond::Expired => segment(1, SortColumn::NotAfter, vec![*c]),
                    StatusCond::Revoked => segment(2, SortColumn::RevokedAt, vec![*c]),
                })
                .collect();
            if p.descending {
                plan.reverse();
            }
            if let Some(c) = &p.after {
                // Segments wholly before the cursor's are done.
                let passed = |s: &Segment| if p.descending { s.rank > c.rank } else { s.rank < c.rank };
                plan.retain(|s| !passed(s));
            }
            return plan;
        }
    };
    let statuses = if admitted.len() == 3 { Vec::new() } else { admitted };
    vec![segment(0, column, statuses)]
}

impl Segment {
    /// The cursor a row of this segment leaves behind.
    pub(crate) fn cursor_of(&self, row: &LeafRow) -> LeafCursor {
        let key = match self.column {
            SortColumn::Seq => SortKey::Int(row.seq),
            SortColumn::SubjectLower => SortKey::Text(row.subject_name.to_ascii_lowercase()),
            SortColumn::NotBefore => SortKey::Int(row.not_before),
            SortColumn::NotAfter => SortKey::Int(row.not_after),
            SortColumn::RevokedAt => SortKey::Int(row.revoked_at.unwrap_or(0)),
        };
        LeafCursor {
            rank: self.rank,
            key,
            seq: row.seq,
        }
    }

    fn column_sql(&self, dialect: Dialect) -> &'static str {
        match (self.column, dialect) {
            (SortColumn::Seq, _) => "seq",
            // Folded when written (ASCII only, as SQL lower()), so both
            // backends order alike and seek the index by row value.
            (SortColumn::SubjectLower, _) => "subject_key",
            (SortColumn::NotBefore, _) => "not_before",
            (SortColumn::NotAfter, _) => "not_after",
            (SortColumn::RevokedAt, _) => "revoked_at",
        }
    }

    /// The `WHERE` clause: the CA, the admitted statuses, and (for rows)
    /// one bound from the cursor. `cursor` is `Some(true)` for the rows tied
    /// with the cursor's key (`key = k AND seq beyond s`, an exact index seek
    /// on `(ca_id, key, seq)`), `Some(false)` for the rows past its key.
    fn condition(&self, dialect: Dialect, binds: &mut Vec<Value>, cursor: Option<bool>) -> String {
        let param = |v: Value, binds: &mut Vec<Value>| {
            binds.push(v);
            dialect.param(binds.len())
        };
        binds.push(text(&self.ca_id));
        let mut sql = format!("ca_id = {}", dialect.param(binds.len()));
        if !self.statuses.is_empty() {
            // With a cursor on notAfter the status bound is on the same
            // column: `+` keeps it out of the index range, so the planner
            // seeks by the cursor's bound (which implies it within a status
            // segment) instead of scanning from `now`.
            let na = if cursor.is_some() && self.column == SortColumn::NotAfter {
                "+not_after"
            } else {
                "not_after"
            };
            let uses_now = self.statuses.iter().any(|c| *c != StatusCond::Revoked);
            let now = if uses_now {
                param(int(self.now), binds)
            } else {
                String::new()
            };
            let conds: Vec<String> = self
                .statuses
                .iter()
                .map(|c| match c {
                    StatusCond::Active => format!("(revoked_at IS NULL AND {na} > {now})"),
                    StatusCond::Expired => format!("(revoked_at IS NULL AND {na} <= {now})"),
                    StatusCond::Revoked => "revoked_at IS NOT NULL".to_owned(),
                })
                .collect();
            sql.push_str(&format!(" AND ({})", conds.join(" OR ")));
            if self.statuses == [StatusCond::Active] || self.statuses == [StatusCond::Expired] {
                // Spelled out at the top level so the partial index applies.
                sql.push_str(" AND revoked_at IS NULL");
            }
        }
        if let (Some(tied), Some((key, seq))) = (cursor, &self.after) {
            let col = self.column_sql(dialect);
            let cmp = if self.descending { "<" } else { ">" };
            if self.column == SortColumn::Seq {
                let s = param(int(*seq), binds);
                sql.push_str(&format!(" AND seq {cmp} {s}"));
            } else {
                let k = param(
                    match key {
                        SortKey::Int(n) => int(*n),
                        SortKey::Text(t) => text(t),
                    },
                    binds,
                );
                if tied {
                    let s = param(int(*seq), binds);
                    sql.push_str(&format!(" AND {col} = {k} AND seq {cmp} {s}"));
                } else {
                    sql.push_str(&format!(" AND {col} {cmp} {k}"));
                }
            }
        }
        sql
    }

    /// How many rows the segment holds (cursor ignored), with its binds.
    pub(crate) fn count_sql(&self, dialect: Dialect) -> (String, Vec<Value>) {
        let mut binds = Vec::new();
        let cond = self.condition(dialect, &mut binds, None);
        (format!("SELECT count(*) FROM leaves WHERE {cond}"), binds)
    }

    /// The statements that read the segment's rows in order, each with its
    /// binds: run them in turn until `limit` rows are in. After a cursor,
    /// the rows tied with its key come first, then those past it: a row
    /// value comparison would seek by the key alone and then scan every tie
    /// (a million, when every leaf has the same subject). `offset` applies
    /// to the first statement only, so the caller passes over a cursor's
    /// offset itself (the API never sends both).
    pub(crate) fn statements(&self, dialect: Dialect, offset: u64, limit: u64) -> Vec<(String, Vec<Value>)> {
        let col = self.column_sql(dialect);
        let dir = if self.descending { "DESC" } else { "ASC" };
        let order = if self.column == SortColumn::Seq {
            format!("seq {dir}")
        } else {
            format!("{col} {dir}, seq {dir}")
        };
        let parts: Vec<Option<bool>> = match (&self.after, self.column) {
            (None, _) => vec![None],
            (Some(_), SortColumn::Seq) => vec![Some(false)],
            (Some(_), _) => vec![Some(true), Some(false)],
        };
        parts
            .into_iter()
            .enumerate()
            .map(|(i, part)| {
                let mut binds = Vec::new();
                let cond = self.condition(dialect, &mut binds, part);
                let order = if part == Some(true) {
                    format!("seq {dir}")
                } else {
                    order.clone()
                };
                binds.push(int(i64::try_from(limit).unwrap_or(i64::MAX)));
                let l = dialect.param(binds.len());
                binds.push(int(if i == 0 {
                    i64::try_from(offset).unwrap_or(i64::MAX)
                } else {
                    0
                }));
                let o = dialect.param(binds.len());
                (
                    format!("SELECT {LEAF_COLUMNS} FROM leaves WHERE {cond} ORDER BY {order} LIMIT {l} OFFSET {o}"),
                    binds,
                )
            })
            .collect()
    }
}

// ---------------------------------------------------------------- audit

/// Columns [`audit_row`] reads, in its order.
pub(crate) const AUDIT_COLUMNS: &str = "seq, at, actor, activity, target_type, target_id, result, detail, scope_tags";

pub(crate) fn audit_row(r: &dyn Columns) -> Result<AuditRow> {
    let mut c = Cursor::new(r);
    Ok(AuditRow {
        seq: c.int()?,
        at: c.int()?,
        actor: c.text()?,
        activity: c.text()?,
        target_type: c.text()?,
        target_id: c.text()?,
        result: c.text()?,
        detail: c.text()?,
        scope_tags: c.list()?,
    })
}

/// What appending an audit event writes (`seq` is the store's).
pub(crate) fn audit_values(e: &AuditRow) -> Vec<(&'static str, Value)> {
    vec![
        ("at", int(e.at)),
        ("actor", text(&e.actor)),
        ("activity", text(&e.activity)),
        ("target_type", text(&e.target_type)),
        ("target_id", text(&e.target_id)),
        ("result", text(&e.result)),
        ("detail", text(&e.detail)),
        ("scope_tags", text(&join_list(&e.scope_tags))),
    ]
}

/// Columns of `enrolment_profiles`, in `ProfileRow` order.
pub const PROFILE_COLUMNS: &str = "id, ca_id, name, key_types, cn_suffixes, dns_suffixes, ekus, validity_days, \
     renewal_days, requires_approval, created_at, created_by, removed_at, key_usages";

/// Columns of `enrolment_requests`, in `EnrolmentRequestRow` order.
pub const ENROLMENT_REQUEST_COLUMNS: &str = "id, ca_id, transaction_id, profile_id, csr, device_id, requested_at, \
     state, decided_at, decided_by, leaf_id, reason";

/// Columns of `enrolment_challenges`, in `ChallengeRow` order.
pub const CHALLENGE_COLUMNS: &str =
    "id, profile_id, secret_hash, uses_left, expires_at, device_id, subject, created_at, created_by";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_round_trip() {
        let items = vec!["0".to_owned(), "12".to_owned(), "1.3.6.1.5.5.7.3.2".to_owned()];
        assert_eq!(join_list(&items), "0 12 1.3.6.1.5.5.7.3.2");
        assert_eq!(split_list(&join_list(&items)), items);
        assert!(split_list("").is_empty());
        // Whatever an item holds comes back as it was.
        let odd: Vec<String> = ["Role Scope Tag Ids value", "100%", "%20", "a\tb", " ", "%2"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(split_list(&join_list(&odd)), odd);
    }

    #[test]
    fn chains_round_trip() {
        let chain = vec![vec![1, 2, 3], vec![], vec![9; 300]];
        assert_eq!(split_chain(&join_chain(&chain).unwrap_or_default()), chain);
        assert_eq!(join_chain(&[]), None);
    }

    #[test]
    fn update_binds_id_and_previous_version_last() {
        let (sql, binds) = update_ca_sql(
            Dialect::Postgres,
            &CaRow {
                id: "x".into(),
                ca_type: String::new(),
                display_name: String::new(),
                description: None,
                issuer_id: None,
                status: String::new(),
                common_name: String::new(),
                organization_name: None,
                organization_unit: None,
                country_name: None,
                state_name: None,
                locality_name: None,
                subject_name: String::new(),
                key_algorithm: String::new(),
                hash_algorithm: String::new(),
                key_platform: String::new(),
                validity_years: 1,
                ekus: vec![],
                scope_tags: vec![],
                created_at: 0,
                modified_at: 0,
                version: 1,
                issuer_common_name: None,
                root_common_name: None,
                issuer_cert_url: None,
                cert: None,
                chain: vec![],
                csr: None,
                revoked_at: None,
                revocation_reason: None,
                row_version: 5,
                crl_number: 0,
                ocsp: None,
                crl_partitions: 0,
                delta_crls: false,
            },
        );
        let n = binds.len();
        assert!(sql.ends_with(&format!(
            "id = ${} AND deleted_at IS NULL AND row_version = ${n}",
            n - 1
        )));
        assert_eq!(binds[n - 2], Value::Text(Some("x".into())));
        assert_eq!(binds[n - 1], Value::Int(Some(4)));
    }
}
