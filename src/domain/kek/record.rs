//! The text format of the flat records KEK state keeps in `meta` (the
//! rotation in progress, signer registrations): no JSON in the domain.
//!
//! A record is one line per field, each ending in a newline:
//!
//! ```text
//! name=value      a value (possibly empty)
//! name            no value (an absent optional field)
//! ```
//!
//! Names are ASCII letters and digits, starting with a letter, each at most
//! once. In a value a backslash is written `\\` and a newline `\n`; nothing
//! else is escaped, so a value holds any string. A list is one value, its
//! items separated by commas (items are never empty and hold no comma: KEK
//! ids). Integers are in their one canonical decimal form.
//!
//! Decoding is strict: a line without its newline (a truncated record), a
//! bad name or escape, a repeated, missing or unknown field, or a value
//! that is not of its type is an error naming what is wrong.

use std::fmt::Display;
use std::str::FromStr;

/// Why a record does not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RecordError(pub(super) String);

impl Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

type Result<T> = std::result::Result<T, RecordError>;

fn err<T>(what: impl Into<String>) -> Result<T> {
    Err(RecordError(what.into()))
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic()) && chars.all(|c| c.is_ascii_alphanumeric())
}

/// Builds a record, field by field.
#[derive(Debug, Default)]
pub(super) struct Writer {
    text: String,
}

impl Writer {
    pub(super) fn new() -> Self {
        Writer::default()
    }

    fn push(mut self, name: &str, value: Option<&str>) -> Self {
        debug_assert!(valid_name(name), "record field name {name:?}");
        self.text.push_str(name);
        if let Some(value) = value {
            self.text.push('=');
            for c in value.chars() {
                match c {
                    '\\' => self.text.push_str("\\\\"),
                    '\n' => self.text.push_str("\\n"),
                    c => self.text.push(c),
                }
            }
        }
        self.text.push('\n');
        self
    }

    pub(super) fn str(self, name: &str, value: &str) -> Self {
        self.push(name, Some(value))
    }

    pub(super) fn opt(self, name: &str, value: Option<&str>) -> Self {
        self.push(name, value)
    }

    pub(super) fn int(self, name: &str, value: impl Into<i128>) -> Self {
        self.push(name, Some(&value.into().to_string()))
    }

    /// Items must be non-empty and hold no comma (KEK ids).
    pub(super) fn list<T: Display>(self, name: &str, items: &[T]) -> Self {
        let items: Vec<String> = items.iter().map(ToString::to_string).collect();
        debug_assert!(items.iter().all(|i| !i.is_empty() && !i.contains(',')), "{items:?}");
        self.push(name, Some(&items.join(",")))
    }

    pub(super) fn finish(self) -> String {
        self.text
    }
}

/// A decoded record, read field by field; [`Reader::finish`] refuses fields
/// nobody read.
#[derive(Debug)]
pub(super) struct Reader {
    fields: Vec<(String, Option<String>)>,
}

fn unescape(raw: &str) -> Result<String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some(other) => return err(format!("unknown escape \\{other}")),
            None => return err("a value ends in a lone backslash"),
        }
    }
    Ok(out)
}

impl Reader {
    pub(super) fn parse(text: &str) -> Result<Self> {
        let mut fields: Vec<(String, Option<String>)> = Vec::new();
        if text.is_empty() {
            return Ok(Reader { fields });
        }
        let Some(body) = text.strip_suffix('\n') else {
            return err("the last line has no newline (truncated)");
        };
        for (i, line) in body.split('\n').enumerate() {
            let (name, value) = match line.split_once('=') {
                Some((name, raw)) => (
                    name,
                    Some(unescape(raw).map_err(|e| RecordError(format!("line {}: {e}", i + 1)))?),
                ),
                None => (line, None),
            };
            if !valid_name(name) {
                return err(format!("line {}: not a field name: {name:?}", i + 1));
            }
            if fields.iter().any(|(n, _)| n == name) {
                return err(format!("field {name} appears twice"));
            }
            fields.push((name.to_owned(), value));
        }
        Ok(Reader { fields })
    }

    fn take(&mut self, name: &str) -> Result<Option<String>> {
        match self.fields.iter().position(|(n, _)| n == name) {
            Some(i) => Ok(self.fields.remove(i).1),
            None => err(format!("field {name} is missing")),
        }
    }

    pub(super) fn str(&mut self, name: &str) -> Result<String> {
        match self.take(name)? {
            Some(v) => Ok(v),
            None => err(format!("field {name} has no value")),
        }
    }

    pub(super) fn opt(&mut self, name: &str) -> Result<Option<String>> {
        self.take(name)
    }

    /// An integer, in its canonical form only (no sign on positives, no
    /// leading zeros, no spaces).
    pub(super) fn int<T: FromStr + Display>(&mut self, name: &str) -> Result<T> {
        let text = self.str(name)?;
        match text.parse::<T>() {
            Ok(v) if v.to_string() == text => Ok(v),
            _ => err(format!("field {name} is not an integer of its range: {text:?}")),
        }
    }

    pub(super) fn list(&mut self, name: &str) -> Result<Vec<String>> {
        let text = self.str(name)?;
        if text.is_empty() {
            return Ok(Vec::new());
        }
        let items: Vec<String> = text.split(',').map(str::to_owned).collect();
        if items.iter().any(String::is_empty) {
            return err(format!("field {name} has an empty list item"));
        }
        Ok(items)
    }

    /// Refuses fields that were not read (unknown to the caller).
    pub(super) fn finish(self) -> Result<()> {
        match self.fields.first() {
            Some((name, _)) => err(format!("unknown field {name}")),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AWKWARD: &[&str] = &[
        "",
        "plain",
        "a=b=c",
        "back\\slash",
        "\\n is not a newline",
        "two\nlines\n",
        "\n",
        "\\",
        "ends with backslash\\",
        "cr\r\nlf",
        "comma,separated",
        "tab\there",
        "unicode é 𝄞 \u{10FFFF}",
        "\0nul",
        "{\"json\": true}",
        "name",
        " spaced ",
    ];

    #[test]
    fn awkward_strings_round_trip() {
        for s in AWKWARD {
            let text = Writer::new().str("v", s).opt("o", Some(s)).finish();
            assert_eq!(text.matches('\n').count(), 2, "one line per field: {text:?}");
            let mut r = Reader::parse(&text).unwrap();
            assert_eq!(r.str("v").unwrap(), *s);
            assert_eq!(r.opt("o").unwrap().as_deref(), Some(*s));
            r.finish().unwrap();
        }
    }

    #[test]
    fn every_kind_of_field_round_trips() {
        let text = Writer::new()
            .str("from", "0123456789abcdef")
            .opt("kind", None)
            .opt("some", Some(""))
            .int("resealed", u64::MAX)
            .int("startedAt", i64::MIN)
            .list("held", &["a1", "b2"])
            .list("none", &[] as &[&str])
            .finish();
        assert_eq!(
            text,
            "from=0123456789abcdef\nkind\nsome=\nresealed=18446744073709551615\n\
             startedAt=-9223372036854775808\nheld=a1,b2\nnone=\n"
        );
        let mut r = Reader::parse(&text).unwrap();
        // Any order of reading.
        assert_eq!(r.list("none").unwrap(), Vec::<String>::new());
        assert_eq!(r.list("held").unwrap(), vec!["a1", "b2"]);
        assert_eq!(r.int::<i64>("startedAt").unwrap(), i64::MIN);
        assert_eq!(r.int::<u64>("resealed").unwrap(), u64::MAX);
        assert_eq!(r.opt("some").unwrap(), Some(String::new()));
        assert_eq!(r.opt("kind").unwrap(), None);
        assert_eq!(r.str("from").unwrap(), "0123456789abcdef");
        r.finish().unwrap();
        assert!(Reader::parse("").unwrap().finish().is_ok());
    }

    fn refused(text: &str, read: impl FnOnce(&mut Reader) -> Result<()>) -> String {
        let result = Reader::parse(text).and_then(|mut r| {
            read(&mut r)?;
            r.finish()
        });
        match result {
            Err(e) => e.0,
            Ok(()) => panic!("accepted {text:?}"),
        }
    }

    #[test]
    fn malformed_records_are_refused() {
        let one = |r: &mut Reader| r.str("a").map(drop);
        // Framing.
        assert!(refused("a=1", one).contains("truncated"));
        assert!(refused("a=1\n\n", one).contains("not a field name"));
        assert!(refused("\na=1\n", one).contains("not a field name"));
        assert!(refused("=1\n", one).contains("not a field name"));
        assert!(refused(" a=1\n", one).contains("not a field name"));
        assert!(refused("1a=1\n", one).contains("not a field name"));
        assert!(refused("a-b=1\n", one).contains("not a field name"));
        assert!(refused("{\"a\":\"1\"}", one).contains("truncated"));
        assert!(refused("{\"a\":\"1\"}\n", one).contains("not a field name"));
        // Escapes.
        assert!(refused("a=x\\t\n", one).contains("unknown escape"));
        assert!(refused("a=x\\\n", one).contains("lone backslash"));
        // Fields.
        assert!(refused("a=1\na=2\n", one).contains("twice"));
        assert!(refused("b=1\n", one).contains("a is missing"));
        assert!(refused("a=1\nb=2\n", one).contains("unknown field b"));
        assert!(refused("a\n", one).contains("no value"));
        // Types.
        for bad in ["", "+1", "01", "-0", " 1", "1 ", "1.0", "x", "18446744073709551616"] {
            let text = format!("n={bad}\n");
            assert!(
                refused(&text, |r| r.int::<u64>("n").map(drop)).contains("not an integer"),
                "{bad:?}"
            );
        }
        assert!(refused("n=-1\n", |r| r.int::<u64>("n").map(drop)).contains("not an integer"));
        for bad in [",", "a,", ",a", "a,,b"] {
            let text = format!("l={bad}\n");
            assert!(
                refused(&text, |r| r.list("l").map(drop)).contains("empty list item"),
                "{bad:?}"
            );
        }
    }
}
