//! The OData query options Graph documents for these collections: `$filter`
//! (eq / ne, and / or, parentheses), `$orderby`, `$select`, `$top`, `$skip`,
//! `$count`, and our `$skiptoken`. Evaluated over entities as JSON, with the
//! properties each collection allows; anything else is a 400, never ignored.

use std::cmp::Ordering;

use serde_json::Value;

use super::error::ApiError;

/// A parsed `$filter` expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Eq(String, String),
    Ne(String, String),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
}

impl Filter {
    pub fn matches(&self, v: &Value) -> bool {
        match self {
            Filter::Eq(p, lit) => v
                .get(p)
                .and_then(Value::as_str)
                .is_some_and(|s| s.eq_ignore_ascii_case(lit)),
            Filter::Ne(p, lit) => !v
                .get(p)
                .and_then(Value::as_str)
                .is_some_and(|s| s.eq_ignore_ascii_case(lit)),
            Filter::And(a, b) => a.matches(v) && b.matches(v),
            Filter::Or(a, b) => a.matches(v) || b.matches(v),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Open,
    Close,
}

fn tokenize(s: &str) -> Result<Vec<Tok>, ApiError> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            ' ' | '\t' => {
                chars.next();
            }
            '(' => {
                chars.next();
                out.push(Tok::Open);
            }
            ')' => {
                chars.next();
                out.push(Tok::Close);
            }
            '\'' => {
                chars.next();
                let mut lit = String::new();
                loop {
                    match chars.next() {
                        Some('\'') if chars.peek() == Some(&'\'') => {
                            chars.next();
                            lit.push('\'');
                        }
                        Some('\'') => break,
                        Some(ch) => lit.push(ch),
                        None => return Err(ApiError::bad_request("unterminated string in $filter")),
                    }
                }
                out.push(Tok::Str(lit));
            }
            c if c.is_ascii_alphanumeric() || c == '_' => {
                let mut id = String::new();
                while let Some(&ch) = chars.peek() {
                    if ch.is_ascii_alphanumeric() || ch == '_' {
                        id.push(ch);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(Tok::Ident(id));
            }
            other => return Err(ApiError::bad_request(format!("unexpected {other:?} in $filter"))),
        }
    }
    Ok(out)
}

struct Parser<'a> {
    toks: Vec<Tok>,
    pos: usize,
    allowed: &'a [&'a str],
    depth: usize,
}

impl Parser<'_> {
    fn peek_word(&self, w: &str) -> bool {
        matches!(self.toks.get(self.pos), Some(Tok::Ident(i)) if i == w)
    }

    fn or(&mut self) -> Result<Filter, ApiError> {
        let mut left = self.and()?;
        while self.peek_word("or") {
            self.pos += 1;
            left = Filter::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, ApiError> {
        let mut left = self.term()?;
        while self.peek_word("and") {
            self.pos += 1;
            left = Filter::And(Box::new(left), Box::new(self.term()?));
        }
        Ok(left)
    }

    fn term(&mut self) -> Result<Filter, ApiError> {
        let bad = || ApiError::bad_request("$filter terms look like: property eq 'value'");
        match self.toks.get(self.pos).cloned() {
            Some(Tok::Open) => {
                self.depth += 1;
                if self.depth > 16 {
                    return Err(ApiError::bad_request("$filter nests too deeply"));
                }
                self.pos += 1;
                let f = self.or()?;
                if self.toks.get(self.pos) != Some(&Tok::Close) {
                    return Err(ApiError::bad_request("unbalanced parentheses in $filter"));
                }
                self.pos += 1;
                self.depth -= 1;
                Ok(f)
            }
            Some(Tok::Ident(prop)) => {
                if !self.allowed.contains(&prop.as_str()) {
                    return Err(ApiError::bad_request(format!(
                        "$filter on {prop} is not supported (supported: {})",
                        self.allowed.join(", ")
                    )));
                }
                let op = match self.toks.get(self.pos + 1) {
                    Some(Tok::Ident(op)) if op == "eq" || op == "ne" => op.clone(),
                    _ => return Err(bad()),
                };
                let Some(Tok::Str(lit)) = self.toks.get(self.pos + 2).cloned() else {
                    return Err(bad());
                };
                self.pos += 3;
                Ok(if op == "eq" {
                    Filter::Eq(prop, lit)
                } else {
                    Filter::Ne(prop, lit)
                })
            }
            _ => Err(bad()),
        }
    }
}

/// Parses a `$filter` over the `allowed` properties.
pub fn parse_filter(s: &str, allowed: &[&str]) -> Result<Filter, ApiError> {
    if s.len() > 2048 {
        return Err(ApiError::bad_request("$filter is too long"));
    }
    let mut p = Parser {
        toks: tokenize(s)?,
        pos: 0,
        allowed,
        depth: 0,
    };
    let f = p.or()?;
    if p.pos != p.toks.len() {
        return Err(ApiError::bad_request("unexpected trailing input in $filter"));
    }
    Ok(f)
}

/// A parsed `$orderby`.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderBy(pub Vec<(String, bool)>);

pub fn parse_orderby(s: &str, allowed: &[&str]) -> Result<OrderBy, ApiError> {
    let mut keys = Vec::new();
    for part in s.split(',') {
        let mut words = part.split_whitespace();
        let prop = words
            .next()
            .ok_or_else(|| ApiError::bad_request("empty $orderby term"))?;
        if !allowed.contains(&prop) {
            return Err(ApiError::bad_request(format!(
                "$orderby on {prop} is not supported (supported: {})",
                allowed.join(", ")
            )));
        }
        let desc = match words.next() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => return Err(ApiError::bad_request(format!("$orderby direction {other}"))),
        };
        if words.next().is_some() {
            return Err(ApiError::bad_request("malformed $orderby"));
        }
        keys.push((prop.to_owned(), desc));
    }
    Ok(OrderBy(keys))
}

fn cmp_values(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (Some(Value::String(x)), Some(Value::String(y))) => x.to_lowercase().cmp(&y.to_lowercase()),
        (Some(Value::Number(x)), Some(Value::Number(y))) => {
            x.as_f64().partial_cmp(&y.as_f64()).unwrap_or(Ordering::Equal)
        }
        (None | Some(Value::Null), None | Some(Value::Null)) => Ordering::Equal,
        (None | Some(Value::Null), _) => Ordering::Less,
        (_, None | Some(Value::Null)) => Ordering::Greater,
        _ => Ordering::Equal,
    }
}

impl OrderBy {
    pub fn sort(&self, items: &mut [Value]) {
        items.sort_by(|a, b| {
            for (prop, desc) in &self.0 {
                let o = cmp_values(a.get(prop), b.get(prop));
                let o = if *desc { o.reverse() } else { o };
                if o != Ordering::Equal {
                    return o;
                }
            }
            Ordering::Equal
        });
    }
}

/// Projects `$select`ed properties (plus `id` and `@odata.type`, as Graph does).
pub fn select(v: Value, props: &[String]) -> Value {
    let Value::Object(map) = v else { return v };
    Value::Object(
        map.into_iter()
            .filter(|(k, _)| k == "id" || k == "@odata.type" || props.iter().any(|p| p == k))
            .collect(),
    )
}

pub fn parse_select(s: &str, allowed: &[&str]) -> Result<Vec<String>, ApiError> {
    s.split(',')
        .map(|p| {
            let p = p.trim();
            if allowed.contains(&p) {
                Ok(p.to_owned())
            } else {
                Err(ApiError::bad_request(format!(
                    "$select of {p} is not supported (supported: {})",
                    allowed.join(", ")
                )))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const P: &[&str] = &["certificationAuthorityStatus", "cloudCertificationAuthorityType"];

    #[test]
    fn filters_parse_and_evaluate() {
        let f = parse_filter(
            "certificationAuthorityStatus eq 'active' and (cloudCertificationAuthorityType eq 'rootCertificationAuthority' or cloudCertificationAuthorityType ne 'issuingCertificationAuthority')",
            P,
        )
        .unwrap();
        assert!(f.matches(&json!({"certificationAuthorityStatus": "active", "cloudCertificationAuthorityType": "rootCertificationAuthority"})));
        assert!(!f.matches(&json!({"certificationAuthorityStatus": "paused", "cloudCertificationAuthorityType": "rootCertificationAuthority"})));
        assert!(!f.matches(&json!({"certificationAuthorityStatus": "active", "cloudCertificationAuthorityType": "issuingCertificationAuthority"})));
        // `and` binds tighter than `or`.
        let f = parse_filter("certificationAuthorityStatus eq 'a' or certificationAuthorityStatus eq 'b' and cloudCertificationAuthorityType eq 'x'", P).unwrap();
        assert!(f.matches(&json!({"certificationAuthorityStatus": "a"})));
        for bad in [
            "",
            "displayName eq 'x'",
            "certificationAuthorityStatus gt 'x'",
            "(certificationAuthorityStatus eq 'x'",
            "certificationAuthorityStatus eq 'x' junk",
            "certificationAuthorityStatus eq 'x",
        ] {
            assert!(parse_filter(bad, P).is_err(), "{bad}");
        }
    }

    #[test]
    fn orderby_sorts_with_direction() {
        let o = parse_orderby("displayName desc", &["displayName"]).unwrap();
        let mut v = vec![
            json!({"displayName": "b"}),
            json!({"displayName": "a"}),
            json!({"displayName": "c"}),
        ];
        o.sort(&mut v);
        assert_eq!(v[0]["displayName"], "c");
        assert!(parse_orderby("thumbprint", &["displayName"]).is_err());
        assert!(parse_orderby("displayName sideways", &["displayName"]).is_err());
    }

    #[test]
    fn select_keeps_id_and_type() {
        let v = select(json!({"id": "1", "@odata.type": "t", "a": 1, "b": 2}), &["a".into()]);
        assert_eq!(v, json!({"id": "1", "@odata.type": "t", "a": 1}));
    }
}
