//! Problems found during a run, each pinned to the file, document, object and field it concerns.
//!
//! A problem never carries a secret value: messages are built from names, keys, fields and the
//! provider's error class only. Input is quoted as written except for non-printing characters,
//! which are shown escaped ([`printable`]), so a name cannot forge a line or a terminal sequence.

use std::borrow::Cow;
use std::fmt;

/// `text` with every non-printing character escaped as Rust's `escape_debug` writes it (`\n`,
/// `\t`, `\u{1b}`, `\u{2028}`, `\u{202e}`): control characters, line and paragraph separators,
/// format characters (bidi overrides, zero-width spaces), spaces other than U+0020, unassigned
/// and private-use code points. Everything else, backslashes and quotes included, stays as is.
pub fn printable(text: &str) -> Cow<'_, str> {
    if text.chars().all(is_printing) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_printing(c) {
            out.push(c);
        } else {
            out.extend(c.escape_debug());
        }
    }
    Cow::Owned(out)
}

/// Whether `c` prints as itself (Rust's own table of printable characters, as `{:?}` uses it).
fn is_printing(c: char) -> bool {
    if c.is_ascii() {
        return c == ' ' || c.is_ascii_graphic();
    }
    // `str::escape_debug` escapes a non-printing character anywhere, a combining mark (which
    // prints) only at the start: after a letter only the former is escaped.
    let mut probe = [0u8; 8];
    probe[0] = b'a';
    let len = 1 + c.encode_utf8(&mut probe[1..]).len();
    std::str::from_utf8(&probe[..len]).is_ok_and(|s| s.escape_debug().count() == 2)
}

/// Where a problem was found: a file (or `<stdin>`) and the 0-based document index in it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin {
    /// Path as given by the user, or `<stdin>`.
    pub file: String,
    /// 0-based index of the document in the file (after `kind: List` items are counted as their
    /// parent document).
    pub index: usize,
    /// Item index when the object came from a `kind: List` document.
    pub item: Option<usize>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: document {}", printable(&self.file), self.index)?;
        if let Some(item) = self.item {
            write!(f, " item {item}")?;
        }
        Ok(())
    }
}

/// One reportable problem. Rendered as
/// `FILE: document N: KIND NS/NAME: FIELD: MESSAGE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub origin: Option<Origin>,
    /// `Kind namespace/name` of the object, when known.
    pub object: Option<String>,
    /// Field path inside the object, such as `spec.data[2].remoteRef.property`.
    pub field: Option<String>,
    /// What went wrong; names and error classes only, never a value.
    pub message: String,
}

impl Problem {
    /// A problem with only a message (usage and set-up errors).
    pub fn new(message: impl Into<String>) -> Self {
        Problem { origin: None, object: None, field: None, message: message.into() }
    }
    pub fn at(mut self, origin: &Origin) -> Self {
        self.origin = Some(origin.clone());
        self
    }
    pub fn object(mut self, object: impl Into<String>) -> Self {
        self.object = Some(object.into());
        self
    }
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(o) = &self.origin {
            write!(f, "{o}: ")?;
        }
        if let Some(o) = &self.object {
            write!(f, "{}: ", printable(o))?;
        }
        if let Some(field) = &self.field {
            write!(f, "{}: ", printable(field))?;
        }
        f.write_str(&printable(&self.message))
    }
}

/// All problems of a run; the run fails if this is non-empty.
#[derive(Debug, Default)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    pub fn push(&mut self, p: Problem) {
        self.0.push(p);
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn extend(&mut self, other: Problems) {
        self.0.extend(other.0);
    }
    /// `Ok(v)` when there is no problem, else `Err(self)`.
    pub fn into_result<T>(self, v: T) -> Result<T, Problems> {
        if self.0.is_empty() {
            Ok(v)
        } else {
            Err(self)
        }
    }
}

impl From<Problem> for Problems {
    fn from(p: Problem) -> Self {
        Problems(vec![p])
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "error: {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_printing_characters_are_shown_escaped() {
        let key =
            "x`\nerror: all good, 0 problem(s)\u{1b}[2K\r\t\u{7f}\u{85}\u{a0}\u{2028}\u{2029}\u{202e}\u{2066}\u{200b}\u{feff}\u{e000}";
        let p = Problem::new(format!("secret `{key}` not found"))
            .at(&Origin { file: "a\nb.yaml".into(), index: 0, item: None })
            .object("ExternalSecret ns/\u{1b}]0;t\u{7}")
            .field("spec.data[0]\u{2028}");
        assert_eq!(
            p.to_string(),
            "a\\nb.yaml: document 0: ExternalSecret ns/\\u{1b}]0;t\\u{7}: spec.data[0]\\u{2028}: secret `x`\\nerror: all good, 0 problem(s)\\u{1b}[2K\\r\\t\\u{7f}\\u{85}\\u{a0}\\u{2028}\\u{2029}\\u{202e}\\u{2066}\\u{200b}\\u{feff}\\u{e000}` not found"
        );
        // Printing text of any script, combining marks, quotes and backslashes stay as written.
        for text in ["café `ключ` 鍵 e\u{301} क्षि \"q\" 'q' a\\nb ^[a-z]+$", ""] {
            assert!(matches!(printable(text), Cow::Borrowed(t) if t == text), "{text}");
        }
    }
}
