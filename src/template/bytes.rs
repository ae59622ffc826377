//! Byte strings through text template engines.
//!
//! Secret values are bytes, and neither gotmpl nor handlebars has a byte-string type (both use
//! UTF-8 `str`). Go's `text/template` works on Go strings, which are byte strings, so ESO templates
//! such as `{{ .ks | b64dec | b64enc }}` or `{{ .tls | b64dec | pkcs12key }}` pass binary through.
//! To keep that, every string inside an engine is a **byte-char string**: byte `b` is carried as the
//! char `U+00bb` (the Latin-1 mapping). Template sources, provider values and function results are
//! all converted on the way in, and the rendered text is converted back byte for byte. So:
//! - ASCII is unchanged, binary survives any pipeline, and output bytes equal Go's;
//! - functions that need text (`upper`, `toJson`, ...) decode the bytes as UTF-8 first and encode the
//!   result again ([`with_text`]).

/// Bytes as a byte-char string.
pub fn to_engine(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| b as char).collect()
}

/// UTF-8 text (a template source, a literal) as a byte-char string of its UTF-8 bytes.
pub fn text_to_engine(text: &str) -> String {
    to_engine(text.as_bytes())
}

/// Marks a *raw number* (an integer beyond 64 bits read by `fromJson`, see `super::json`): the
/// only char above `U+00FF` an engine string may hold; it is dropped on the way out, so the
/// number prints as its digits.
pub const RAW_NUMBER: char = crate::manifest::numbers::RAW_START;

/// A byte-char string back to bytes. Errors on a char above `U+00FF` (other than
/// [`RAW_NUMBER`], dropped), which only a function that forgot to encode its result could produce.
pub fn from_engine(s: &str) -> Result<Vec<u8>, String> {
    s.chars()
        .filter(|&c| c != RAW_NUMBER)
        .map(|c| u8::try_from(u32::from(c)).map_err(|_| "internal: a template function returned text that is not byte-encoded".to_string()))
        .collect()
}

/// A byte-char string back to UTF-8 text (for labels, annotations, keys). Errors when the bytes
/// are not UTF-8.
pub fn engine_to_text(s: &str) -> Result<String, String> {
    String::from_utf8(from_engine(s)?).map_err(|_| "the rendered text is not valid UTF-8".to_string())
}

/// Applies a text function to a byte-char string: valid UTF-8 is decoded, transformed and
/// encoded again; other bytes are transformed as Latin-1 (ASCII rules apply, like Go on invalid
/// UTF-8).
pub fn with_text(s: &str, f: impl Fn(&str) -> String) -> String {
    match from_engine(s).ok().and_then(|b| String::from_utf8(b).ok()) {
        Some(text) => text_to_engine(&f(&text)),
        None => f(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_and_text_is_utf8_encoded() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(from_engine(&to_engine(&all)).unwrap(), all);
        assert_eq!(text_to_engine("é"), "\u{c3}\u{a9}");
        assert_eq!(engine_to_text(&text_to_engine("héllo")).unwrap(), "héllo");
        assert_eq!(with_text(&text_to_engine("héllo"), |t| t.to_uppercase()), text_to_engine("HÉLLO"));
        assert!(from_engine("\u{100}").is_err());
    }
}
