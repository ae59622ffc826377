//! Problems found during a run, each pinned to the file, document, object and field it concerns.
//!
//! A problem never carries a secret value: messages are built from names, keys, fields and the
//! provider's error class only.

use std::fmt;

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
        write!(f, "{}: document {}", self.file, self.index)?;
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
            write!(f, "{o}: ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
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
