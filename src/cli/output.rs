//! Rendering command results: tables for people, JSON for machines.

use std::io::Write;
use std::path::Path;

use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{CliError, Result};
use crate::api::dto::{CertificationAuthority, LeafCertificate};
use crate::domain::{Ca, Leaf};

pub struct Output<'a> {
    out: &'a mut dyn Write,
    json: bool,
}

fn date(t: Option<OffsetDateTime>) -> String {
    t.and_then(|t| t.format(&Rfc3339).ok()).unwrap_or_default()
}

fn opt(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("")
}

impl<'a> Output<'a> {
    pub fn new(out: &'a mut dyn Write, json: bool) -> Self {
        Output { out, json }
    }

    fn line(&mut self, s: &str) -> Result<()> {
        writeln!(self.out, "{s}").map_err(CliError::Output)
    }

    fn json_value<T: Serialize>(&mut self, v: &T) -> Result<()> {
        let s = serde_json::to_string_pretty(v).map_err(|e| CliError::Output(std::io::Error::other(e)))?;
        self.line(&s)
    }

    pub fn raw(&mut self, text: &str) -> Result<()> {
        write!(self.out, "{text}").map_err(CliError::Output)
    }

    pub fn init(&mut self, dir: &Path, url: &str) -> Result<()> {
        if self.json {
            return self.json_value(&serde_json::json!({"dataDir": dir, "publicUrl": url}));
        }
        self.line(&format!("data directory: {}\npublic URL:     {url}", dir.display()))
    }

    /// A CA: a table from the domain record, or (`--json`) the Graph entity
    /// the API shows, so scripts read one shape everywhere.
    pub fn ca(&mut self, ca: &Ca) -> Result<()> {
        if self.json {
            return self.json_value(&CertificationAuthority::from(ca));
        }
        let rows: Vec<(&str, String)> = vec![
            ("id", ca.id.clone()),
            ("displayName", ca.display_name.clone()),
            ("type", ca.ca_type.name().into()),
            ("status", ca.status.name().into()),
            ("subjectName", ca.subject_name.clone()),
            ("issuer", opt(&ca.issuer_id).into()),
            ("keySize", ca.key_algorithm.name().into()),
            ("hash", ca.hash_algorithm.name().into()),
            ("version", ca.version.number.to_string()),
            ("validFrom", date(ca.version.not_before)),
            ("validTo", date(ca.version.not_after)),
            ("serialNumber", opt(&ca.version.serial).into()),
            ("thumbprint", opt(&ca.version.thumbprint).into()),
            ("extendedKeyUsages", ca.ekus.join(", ")),
            ("scopeTags", ca.scope_tags.join(", ")),
            ("crlUrl", ca.urls.crl.clone()),
            ("crlPartitions", ca.crl_partitions.to_string()),
            ("crlPartitionsUrl", ca.urls.partitions_json()),
            (
                "deltaCrls",
                if ca.delta_crls { "enabled".into() } else { String::new() },
            ),
            ("certificateUrl", ca.urls.certificate.clone()),
            ("ocspUrl", ca.urls.ocsp.clone()),
            ("revokedAt", date(ca.revoked_at)),
        ];
        let mut t = Table::new();
        t.load_preset(UTF8_BORDERS_ONLY);
        for (k, v) in rows {
            if !v.is_empty() {
                t.add_row(vec![k.to_owned(), v]);
            }
        }
        self.line(&t.to_string())
    }

    pub fn cas(&mut self, cas: &[Ca]) -> Result<()> {
        if self.json {
            let cas: Vec<CertificationAuthority> = cas.iter().map(Into::into).collect();
            return self.json_value(&serde_json::json!({ "value": cas }));
        }
        let mut t = Table::new();
        t.load_preset(UTF8_BORDERS_ONLY);
        t.set_header(vec!["id", "commonName", "type", "status", "keySize", "validTo"]);
        for ca in cas {
            t.add_row(vec![
                ca.id.clone(),
                ca.subject.common_name.clone(),
                ca.ca_type.name().into(),
                ca.status.name().into(),
                ca.key_algorithm.name().into(),
                date(ca.version.not_after),
            ]);
        }
        self.line(&t.to_string())
    }

    pub fn leaf(&mut self, l: &Leaf) -> Result<()> {
        if self.json {
            return self.json_value(&LeafCertificate::from(l));
        }
        let mut t = Table::new();
        t.load_preset(UTF8_BORDERS_ONLY);
        for (k, v) in [
            ("id", l.id.clone()),
            ("subjectName", l.subject_name.clone()),
            ("issuerId", l.ca_id.clone()),
            ("status", l.status.name().into()),
            ("serialNumber", l.serial.clone()),
            ("thumbprint", l.thumbprint.clone()),
            ("validFrom", date(Some(l.not_before))),
            ("validTo", date(Some(l.not_after))),
            ("revokedAt", date(l.revoked_at)),
            (
                "reason",
                l.revocation_reason.map(|r| r.name().to_owned()).unwrap_or_default(),
            ),
            ("deviceName", opt(&l.device_name).into()),
            ("userPrincipalName", opt(&l.user_principal_name).into()),
            ("devicePlatform", l.device_platform.clone()),
        ] {
            if !v.is_empty() {
                t.add_row(vec![k.to_owned(), v]);
            }
        }
        self.line(&t.to_string())
    }

    pub fn leaves(&mut self, leaves: &[Leaf]) -> Result<()> {
        if self.json {
            let leaves: Vec<LeafCertificate> = leaves.iter().map(Into::into).collect();
            return self.json_value(&serde_json::json!({ "value": leaves }));
        }
        let mut t = Table::new();
        t.load_preset(UTF8_BORDERS_ONLY);
        t.set_header(vec!["id", "subjectName", "serialNumber", "status", "validTo"]);
        for l in leaves {
            t.add_row(vec![
                l.id.clone(),
                l.subject_name.clone(),
                l.serial.clone(),
                l.status.name().into(),
                date(Some(l.not_after)),
            ]);
        }
        self.line(&t.to_string())
    }

    /// A sentence for people after a result: on stdout under a table, on
    /// stderr with `--json` (stdout stays one JSON document).
    pub fn note(&mut self, text: &str) -> Result<()> {
        if self.json {
            eprintln!("{text}");
            return Ok(());
        }
        self.line(text)
    }

    pub fn deleted(&mut self, id: &str) -> Result<()> {
        if self.json {
            return self.json_value(&serde_json::json!({ "deleted": id }));
        }
        self.line(&format!("deleted {id}"))
    }

    pub fn responders(&mut self, responders: &[crate::domain::engine::ResponderInfo]) -> Result<()> {
        let when = |t: time::OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|_| t.unix_timestamp().to_string())
        };
        let standing = |s: crate::domain::lifecycle::ResponderStanding| format!("{s:?}").to_lowercase();
        if self.json {
            let rows: Vec<serde_json::Value> = responders
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "id": r.id, "name": r.name, "status": standing(r.standing),
                        "requestedDateTime": when(r.requested_at),
                        "approvedDateTime": r.approved_at.map(when), "approvedBy": r.approved_by,
                        "lastSeenDateTime": r.last_seen_at.map(when),
                    })
                })
                .collect();
            return self.json_value(&rows);
        }
        let mut table = comfy_table::Table::new();
        table.set_header(["ID", "NAME", "STATUS", "REQUESTED", "APPROVED BY", "LAST SEEN"]);
        for r in responders {
            table.add_row([
                r.id.clone(),
                r.name.clone(),
                standing(r.standing),
                when(r.requested_at),
                r.approved_by.clone().unwrap_or_else(|| "-".into()),
                r.last_seen_at.map_or_else(|| "-".into(), when),
            ]);
        }
        self.line(&table.to_string())
    }

    pub fn profiles(&mut self, profiles: &[crate::domain::Profile]) -> Result<()> {
        let list = |v: &[String]| if v.is_empty() { "-".to_owned() } else { v.join(" ") };
        if self.json {
            let rows: Vec<serde_json::Value> = profiles
                .iter()
                .map(|p| {
                    serde_json::json!({
                        "id": p.id, "caId": p.ca_id, "displayName": p.name,
                        "keyTypes": p.key_types.iter().map(|k| k.name()).collect::<Vec<_>>(),
                        "commonNameSuffixes": p.cn_suffixes, "dnsNameSuffixes": p.dns_suffixes,
                        "extendedKeyUsages": p.ekus.iter().map(ToString::to_string).collect::<Vec<_>>(),
                        "validityDays": p.validity_days, "renewalDays": p.renewal_days,
                    })
                })
                .collect();
            return self.json_value(&rows);
        }
        let mut table = comfy_table::Table::new();
        table.set_header(["ID", "CA", "NAME", "KEYS", "CN SUFFIXES", "DNS SUFFIXES", "DAYS"]);
        for p in profiles {
            table.add_row([
                p.id.clone(),
                p.ca_id.clone(),
                p.name.clone(),
                p.key_types.iter().map(|k| k.name()).collect::<Vec<_>>().join(" "),
                list(&p.cn_suffixes),
                list(&p.dns_suffixes),
                p.validity_days.to_string(),
            ]);
        }
        self.line(&table.to_string())
    }

    pub fn enrolment_requests(&mut self, requests: &[crate::domain::EnrolmentRequestInfo]) -> Result<()> {
        let when = |t: time::OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|_| t.unix_timestamp().to_string())
        };
        if self.json {
            let rows: Vec<serde_json::Value> = requests
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "id": r.id, "certificationAuthorityId": r.ca_id, "transactionId": r.transaction_id,
                        "profileId": r.profile_id, "commonName": r.common_name, "deviceId": r.device_id,
                        "requestedDateTime": when(r.requested_at), "status": r.state,
                        "decidedDateTime": r.decided_at.map(when), "decidedBy": r.decided_by,
                        "leafCertificateId": r.leaf_id, "reason": r.reason,
                    })
                })
                .collect();
            return self.json_value(&rows);
        }
        let mut table = comfy_table::Table::new();
        table.set_header(["ID", "COMMON NAME", "STATUS", "REQUESTED", "DECIDED BY", "LEAF"]);
        for r in requests {
            table.add_row([
                r.id.clone(),
                r.common_name.clone().unwrap_or_else(|| "-".into()),
                r.state.clone(),
                when(r.requested_at),
                r.decided_by.clone().unwrap_or_else(|| "-".into()),
                r.leaf_id.clone().unwrap_or_else(|| "-".into()),
            ]);
        }
        self.line(&table.to_string())
    }

    pub fn challenge(&mut self, c: &crate::domain::IssuedChallenge) -> Result<()> {
        let expires = c
            .expires_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        if self.json {
            return self.json_value(&serde_json::json!({
                "id": c.id, "profileId": c.profile_id, "challenge": c.secret, "uses": c.uses,
                "expirationDateTime": expires,
            }));
        }
        self.line(&format!(
            "{}\n({} use(s) under profile {} until {expires}; shown once, only its hash is stored)",
            c.secret, c.uses, c.profile_id
        ))
    }

    pub fn enrolment_token(&mut self, t: &crate::domain::engine::EnrolmentToken) -> Result<()> {
        let expires = t
            .expires_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        if self.json {
            return self.json_value(&serde_json::json!({
                "token": t.token, "uses": t.uses, "expirationDateTime": expires,
            }));
        }
        self.line(&format!(
            "{}\n(approves {} responder(s) until {expires}; shown once, only its hash is stored)",
            t.token, t.uses
        ))
    }

    pub fn tokens(&mut self, tokens: &[crate::store::TokenRow]) -> Result<()> {
        let when = |t: i64| {
            if t == 0 {
                "-".to_owned()
            } else {
                time::OffsetDateTime::from_unix_timestamp(t)
                    .ok()
                    .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
                    .unwrap_or_else(|| t.to_string())
            }
        };
        if self.json {
            let rows: Vec<serde_json::Value> = tokens
                .iter()
                .map(|t| {
                    serde_json::json!({
                        "id": t.jti, "principal": t.principal, "issuedDateTime": when(t.issued_at),
                        "expirationDateTime": when(t.expires_at), "permissions": t.permissions,
                        "revokedDateTime": t.revoked_at.map(when), "revokedBy": t.revoked_by,
                    })
                })
                .collect();
            return self.json_value(&rows);
        }
        let mut table = comfy_table::Table::new();
        table.set_header(["ID", "PRINCIPAL", "EXPIRES", "REVOKED"]);
        for t in tokens {
            table.add_row([
                t.jti.clone(),
                t.principal.clone(),
                when(t.expires_at),
                t.revoked_at.map(when).unwrap_or_default(),
            ]);
        }
        self.raw(&format!("{table}\n"))
    }

    pub fn count(&mut self, what: &str, n: u64) -> Result<()> {
        if self.json {
            // One line: it closes the JSON-lines stream of `acknowledged` batches.
            return self.line(&serde_json::json!({ what: n }).to_string());
        }
        self.line(&format!("{what} {n} leaf certificate(s)"))
    }

    /// With `--json`, one line per committed batch listing the serial numbers
    /// now durably revoked, so a caller knows exactly what was acknowledged
    /// even if the process dies before the end.
    pub fn acknowledged(&mut self, done: &[Leaf]) -> Result<()> {
        if !self.json {
            return Ok(());
        }
        let serials: Vec<&str> = done.iter().map(|l| l.serial.as_str()).collect();
        let line = serde_json::json!({ "acknowledged": serials }).to_string();
        self.line(&line)?;
        self.out.flush().map_err(CliError::Output)
    }

    /// One line per CRL checked by `crl verify` (one JSON object with `--json`).
    pub fn crl_verified(
        &mut self,
        ca: &str,
        url: &str,
        result: &std::result::Result<super::crl::Verified, String>,
    ) -> Result<()> {
        if self.json {
            let v = match result {
                Ok(v) => serde_json::json!({
                    "ca": ca, "url": url, "ok": true, "crlNumber": v.number, "entries": v.entries,
                    "bytes": v.bytes, "nextUpdate": date(v.next_update),
                    "deltaCrlNumber": v.delta.map(|d| d.0), "deltaEntries": v.delta.map(|d| d.1),
                }),
                Err(e) => serde_json::json!({"ca": ca, "url": url, "ok": false, "error": e}),
            };
            return self.line(&v.to_string());
        }
        match result {
            Ok(v) => self.line(&format!(
                "ok    {ca}  CRL {}: {} entries, {} bytes, nextUpdate {}{}  {url}",
                v.number,
                v.entries,
                v.bytes,
                date(v.next_update),
                v.delta
                    .map(|(n, e)| format!(", delta CRL {n}: {e} entries"))
                    .unwrap_or_default()
            )),
            Err(e) => self.line(&format!("FAIL  {ca}  {e}  {url}")),
        }
    }

    pub fn kek_id(&mut self, id: crate::secrets::KekId) -> Result<()> {
        if self.json {
            return self.json_value(&serde_json::json!({ "kekId": id.to_string() }));
        }
        self.line(&id.to_string())
    }

    pub fn sealed_keys_opened(&mut self, n: u64) -> Result<()> {
        if self.json {
            return self.json_value(&serde_json::json!({ "opened": n }));
        }
        self.line(&format!("all {n} sealed key(s) open"))
    }

    pub fn kek_status(&mut self, st: &crate::domain::kek::KekStatus) -> Result<()> {
        if self.json {
            return self.json_value(&KekStatusJson::of(st));
        }
        let mut text = format!(
            "current KEK:  {}\n",
            st.current.as_deref().unwrap_or("(not recorded yet)")
        );
        match &st.rotation {
            Some(r) => text.push_str(&format!(
                "rotation:     in progress, {} -> {}, {} key(s) re-sealed, at {} {}\n",
                r.from,
                r.target,
                r.resealed,
                r.kind.as_deref().unwrap_or("final check"),
                r.after
            )),
            None => text.push_str("rotation:     none\n"),
        }
        text.push_str("sealed keys:\n");
        for (by, kinds) in &st.sealed {
            let list: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
            text.push_str(&format!("  {by}: {}\n", list.join(", ")));
        }
        text.push_str("live signers:\n");
        if st.live_signers.is_empty() {
            text.push_str("  (none)\n");
        }
        for s in &st.live_signers {
            text.push_str(&format!(
                "  {} ({}, {}): holds {}\n",
                s.node,
                s.role,
                s.listen,
                crate::domain::kek::held_list(&s.held)
            ));
        }
        self.raw(&text)
    }

    /// One line per step of `kek rotate` (JSON lines with `--json`), flushed,
    /// so a caller sees what was committed even if the process dies.
    pub fn kek_rotation_event(&mut self, event: &str, target: &str, examined: u64, resealed: u64) -> Result<()> {
        if self.json {
            let line = serde_json::json!({
                "event": event, "target": target, "examined": examined, "resealed": resealed
            })
            .to_string();
            self.line(&line)?;
        } else {
            match event {
                "current" => self.line(&format!("nothing to do: KEK {target} is already current"))?,
                "started" => self.line(&format!("rotation to KEK {target} started"))?,
                "resumed" => self.line(&format!("rotation to KEK {target} resumed"))?,
                "batch" => self.line(&format!("re-sealed {resealed} of {examined} key(s)"))?,
                _ => self.line(&format!(
                    "rotation complete: KEK {target} is current ({resealed} key(s) re-sealed)"
                ))?,
            }
        }
        self.out.flush().map_err(CliError::Output)
    }

    /// A progress bar on stderr for people; hidden for JSON or when stderr is not a terminal.
    pub fn progress(&self, total: u64, what: &str) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(
            Some(total),
            if self.json {
                ProgressDrawTarget::hidden()
            } else {
                ProgressDrawTarget::stderr()
            },
        );
        if let Ok(style) = ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} ({per_sec}, eta {eta})") {
            bar.set_style(style);
        }
        bar.set_message(what.to_owned());
        bar
    }
}

/// The JSON of `kek status --json` (the domain's types know no JSON).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KekStatusJson<'a> {
    current: Option<&'a str>,
    rotation: Option<RotationJson<'a>>,
    sealed: &'a std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>>,
    live_signers: Vec<SignerJson<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RotationJson<'a> {
    from: &'a str,
    target: &'a str,
    kind: Option<&'a str>,
    after: &'a str,
    resealed: u64,
    started_at: i64,
}

#[derive(Serialize)]
struct SignerJson<'a> {
    node: &'a str,
    role: &'a str,
    listen: &'a str,
    held: Vec<String>,
    seen: i64,
}

impl<'a> KekStatusJson<'a> {
    fn of(st: &'a crate::domain::kek::KekStatus) -> Self {
        KekStatusJson {
            current: st.current.as_deref(),
            rotation: st.rotation.as_ref().map(|r| RotationJson {
                from: &r.from,
                target: &r.target,
                kind: r.kind.as_deref(),
                after: &r.after,
                resealed: r.resealed,
                started_at: r.started_at,
            }),
            sealed: &st.sealed,
            live_signers: st
                .live_signers
                .iter()
                .map(|s| SignerJson {
                    node: &s.node,
                    role: &s.role,
                    listen: &s.listen,
                    held: s.held.iter().map(ToString::to_string).collect(),
                    seen: s.seen,
                })
                .collect(),
        }
    }
}
