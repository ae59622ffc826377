//! ESO's object hashes, reproduced byte for byte so Secrets that ESO wrote are recognised as in
//! sync (`runtime/esutils/utils.go: ObjectHash`): hex of SHA3-224 over Go's `fmt.Sprintf("%+v", x)`.

use std::collections::BTreeMap;
use std::fmt::Write;

use sha3::{Digest, Sha3_224};

fn sha3_224_hex(text: &str) -> String {
    Sha3_224::digest(text.as_bytes()).iter().fold(String::with_capacity(56), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Go's `%+v` of a `map[string][]byte`: `map[k1:[104 105] k2:[]]`, keys sorted (as Go's fmt
/// sorts map keys), bytes as space-separated decimals.
fn go_byte_map<'a>(data: impl IntoIterator<Item = (&'a String, &'a [u8])>) -> String {
    let mut s = String::from("map[");
    for (i, (k, v)) in data.into_iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(k);
        s.push_str(":[");
        for (j, b) in v.iter().enumerate() {
            if j > 0 {
                s.push(' ');
            }
            let _ = write!(s, "{b}");
        }
        s.push(']');
    }
    s.push(']');
    s
}

/// Go's `%+v` of a `map[string]string`: `map[a:b c:d]`, keys sorted.
fn go_string_map(map: &BTreeMap<String, String>) -> String {
    let body: Vec<String> = map.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    format!("map[{}]", body.join(" "))
}

/// The `reconcile.external-secrets.io/data-hash` annotation: ESO's `ObjectHash(secret.Data)`
/// (56 hex characters). `data` is the Secret's whole final data, keys sorted by the map.
pub fn data_hash<'a>(data: impl IntoIterator<Item = (&'a String, &'a [u8])>) -> String {
    sha3_224_hex(&go_byte_map(data))
}

/// ESO's `HashMeta`: `ObjectHash` of the struct `{annotations labels}` of an object's metadata,
/// used in `status.syncedResourceVersion` = `<generation>-<hash>`.
pub fn meta_hash(labels: &BTreeMap<String, String>, annotations: &BTreeMap<String, String>) -> String {
    sha3_224_hex(&format!("{{annotations:{} labels:{}}}", go_string_map(annotations), go_string_map(labels)))
}

/// ESO's `created-by` label value: `ObjectHash("<namespace>/<name>")` (a Go string prints as is).
pub fn created_by(namespace: &str, name: &str) -> String {
    sha3_224_hex(&format!("{namespace}/{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_formats_match_fmt_plus_v() {
        let a = ("a".to_string(), b"hi".to_vec());
        let b = ("b".to_string(), Vec::new());
        let z = ("z".to_string(), vec![0u8, 255]);
        let text = go_byte_map([(&a.0, a.1.as_slice()), (&b.0, b.1.as_slice()), (&z.0, z.1.as_slice())]);
        assert_eq!(text, "map[a:[104 105] b:[] z:[0 255]]");
        assert_eq!(go_byte_map(std::iter::empty()), "map[]");
        let mut labels = BTreeMap::new();
        labels.insert("x".to_string(), "1".to_string());
        assert_eq!(go_string_map(&labels), "map[x:1]");
    }

    #[test]
    fn hashes_are_sha3_224_hex() {
        // SHA3-224("map[]") and SHA3-224("map[a:[104 105]]"), from Python's hashlib.sha3_224.
        assert_eq!(data_hash(std::iter::empty()), "74a974446e359fb3e6baff9bd0058950e6edd0f040888d9989b0a11b");
        let a = ("a".to_string(), b"hi".to_vec());
        assert_eq!(data_hash([(&a.0, a.1.as_slice())]), "4ff142fdfbffa99a208cef0e7968b5e48868cbd34ac0c9be3b668e0f");
        assert_eq!(meta_hash(&BTreeMap::new(), &BTreeMap::new()), "f47fe3c0b255b6dd8047cdffa772587bb829efe7a1cb70febeda2eb2");
        assert_eq!(created_by("ns", "es").len(), 56);
    }
}
