//! The template function library, registered in both engines (gotmpl directly, handlebars through
//! `super::FuncHelper`): the sprig subset ESO users rely on. Every string is a byte-char
//! string ([`super::bytes`]). No function reads the environment, files, the network or the clock,
//! so the same input always renders the same bytes.
//!
//! Deviations from sprig (fail closed): `b64dec`, `fromJson` and `fromYaml` fail on bad input
//! where sprig returns the error text or an empty value; `fromJson` keeps integers as written
//! (`12345678`, where ESO prints `1.2345678e+07`, #1362).

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use gotmpl::{FuncMap, TemplateError, Value};
use sha2::Digest;

use super::args::{arity, bytes_of, err, f, s, strval, FResult};
use super::budget::{self, MAX_STRING};
use super::bytes::{from_engine, text_to_engine, to_engine, with_text};
use super::json::{from_json_text, from_serde, to_json, to_pretty_json, to_yaml};

/// Largest `indent`/`nindent` width (a Secret is at most 1 MiB anyway).
const MAX_INDENT: i64 = 4096;

/// sprig's `indent WIDTH s` (each line padded), after `lead` (`nindent` starts with a newline).
fn indent(name: &str, a: &[Value], lead: &str) -> FResult {
    arity(name, a, 2)?;
    let width = a[0]
        .as_int()
        .filter(|w| (0..=MAX_INDENT).contains(w))
        .ok_or_else(|| err(name, format!("width must be an integer from 0 to {MAX_INDENT}")))?;
    let text = strval(name, &a[1])?;
    let lines = text.matches('\n').count() + 1;
    budget::reserve(name, lead.len() + text.len() + lines.saturating_mul(width as usize))?;
    let pad = " ".repeat(width as usize);
    Ok(s(&format!("{lead}{pad}{}", text.replace('\n', &format!("\n{pad}")))))
}

/// sprig's `empty`: nil, false, 0, "", and empty lists and maps.
pub fn is_empty(v: &Value) -> bool {
    match v {
        Value::Nil => true,
        Value::Bool(b) => !b,
        Value::Int(i) => *i == 0,
        Value::Uint(u) => *u == 0,
        Value::Float(f) => *f == 0.0,
        Value::String(s) => s.is_empty(),
        Value::List(l) => l.is_empty(),
        Value::Map(m) => m.is_empty(),
        _ => false,
    }
}

/// Go's `strconv.Quote` on bytes (valid UTF-8 printable runes kept, the rest escaped).
fn go_quote(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    let text = String::from_utf8_lossy(bytes);
    let valid = std::str::from_utf8(bytes).is_ok();
    if valid {
        for c in text.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
                c => out.push(c),
            }
        }
    } else {
        for &b in bytes {
            match b {
                b'"' => out.push_str("\\\""),
                b'\\' => out.push_str("\\\\"),
                0x20..=0x7e => out.push(b as char),
                _ => out.push_str(&format!("\\x{b:02x}")),
            }
        }
    }
    out.push('"');
    out
}

fn engine_key(k: &str) -> String {
    from_engine(k).ok().and_then(|b| String::from_utf8(b).ok()).unwrap_or_else(|| k.to_string())
}

fn map_of(name: &str, v: &Value) -> Result<Arc<BTreeMap<Arc<str>, Value>>, TemplateError> {
    match v {
        Value::Map(m) => Ok(m.clone()),
        _ => Err(err(name, "first argument must be a map")),
    }
}

/// Functions ESO offers that this tool does not implement yet: a template using one fails with
/// a message naming it.
pub const NOT_YET: &[&str] = &["filterCertChain", "certSANs", "rsaDecrypt", "pemTruststoreToPKCS12", "pemTruststoreToPKCS12Pass"];

/// Functions sprig has that are refused on purpose (environment, time or randomness).
pub const REFUSED: &[&str] =
    &["env", "expandenv", "now", "date", "randAlphaNum", "randAlpha", "randNumeric", "randAscii", "uuidv4", "getHostByName"];

/// The function map shared by both engines.
pub fn library() -> FuncMap {
    let mut m: FuncMap = BTreeMap::new();
    let entries = vec![
        f("default", |n, a| {
            if a.is_empty() || a.len() > 2 {
                return Err(TemplateError::ArgCount { name: n.into(), expected: 2, got: a.len() });
            }
            let given = a.get(1).cloned().unwrap_or(Value::Nil);
            Ok(if is_empty(&given) { a[0].clone() } else { given })
        }),
        // sprig's `fail MSG`: the renderer shows MSG only when it is a literal of the template.
        f("fail", |n, a| {
            arity(n, a, 1)?;
            Err(err(n, strval(n, &a[0])?))
        }),
        f("empty", |n, a| {
            arity(n, a, 1)?;
            Ok(Value::Bool(is_empty(&a[0])))
        }),
        f("coalesce", |_, a| Ok(a.iter().find(|v| !is_empty(v)).cloned().unwrap_or(Value::Nil))),
        f("ternary", |n, a| {
            arity(n, a, 3)?;
            Ok(if a[2].is_truthy() { a[0].clone() } else { a[1].clone() })
        }),
        f("quote", |n, a| {
            let parts: Result<Vec<String>, _> =
                a.iter().filter(|v| !matches!(v, Value::Nil)).map(|v| bytes_of(n, v).map(|b| text_to_engine(&go_quote(&b)))).collect();
            Ok(s(&parts?.join(" ")))
        }),
        f("squote", |n, a| {
            Ok(s(&a
                .iter()
                .filter(|v| !matches!(v, Value::Nil))
                .map(|v| strval(n, v).map(|t| format!("'{t}'")))
                .collect::<Result<Vec<_>, _>>()?
                .join(" ")))
        }),
        f("trim", |n, a| {
            arity(n, a, 1)?;
            Ok(s(&with_text(&strval(n, &a[0])?, |t| t.trim().to_string())))
        }),
        f("trimPrefix", |n, a| {
            arity(n, a, 2)?;
            let (p, v) = (strval(n, &a[0])?, strval(n, &a[1])?);
            Ok(s(v.strip_prefix(p.as_str()).unwrap_or(&v)))
        }),
        f("trimSuffix", |n, a| {
            arity(n, a, 2)?;
            let (p, v) = (strval(n, &a[0])?, strval(n, &a[1])?);
            Ok(s(v.strip_suffix(p.as_str()).unwrap_or(&v)))
        }),
        f("upper", |n, a| {
            arity(n, a, 1)?;
            Ok(s(&with_text(&strval(n, &a[0])?, str::to_uppercase)))
        }),
        f("lower", |n, a| {
            arity(n, a, 1)?;
            Ok(s(&with_text(&strval(n, &a[0])?, str::to_lowercase)))
        }),
        f("replace", |n, a| {
            arity(n, a, 3)?;
            let (old, new, text) = (strval(n, &a[0])?, strval(n, &a[1])?, strval(n, &a[2])?);
            let count = if old.is_empty() { text.chars().count() + 1 } else { text.matches(old.as_str()).count() };
            budget::reserve(n, text.len().saturating_add(count.saturating_mul(new.len())))?;
            Ok(s(&text.replace(&old, &new)))
        }),
        f("contains", |n, a| {
            arity(n, a, 2)?;
            Ok(Value::Bool(strval(n, &a[1])?.contains(&strval(n, &a[0])?)))
        }),
        f("hasPrefix", |n, a| {
            arity(n, a, 2)?;
            Ok(Value::Bool(strval(n, &a[1])?.starts_with(&strval(n, &a[0])?)))
        }),
        f("hasSuffix", |n, a| {
            arity(n, a, 2)?;
            Ok(Value::Bool(strval(n, &a[1])?.ends_with(&strval(n, &a[0])?)))
        }),
        f("indent", |n, a| indent(n, a, "")),
        f("nindent", |n, a| indent(n, a, "\n")),
        f("b64enc", |n, a| {
            arity(n, a, 1)?;
            Ok(s(&base64::engine::general_purpose::STANDARD.encode(bytes_of(n, &a[0])?)))
        }),
        f("b64dec", |n, a| {
            arity(n, a, 1)?;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(bytes_of(n, &a[0])?)
                .map_err(|_| err(n, "the input is not valid base64"))?;
            Ok(s(&to_engine(&decoded)))
        }),
        f("toJson", |n, a| {
            arity(n, a, 1)?;
            budget::check_encoded_len(n, &a[0], false)?;
            Ok(s(&text_to_engine(&to_json(&a[0]).map_err(|e| err(n, e))?)))
        }),
        f("toPrettyJson", |n, a| {
            arity(n, a, 1)?;
            budget::check_encoded_len(n, &a[0], true)?;
            Ok(s(&text_to_engine(&to_pretty_json(&a[0]).map_err(|e| err(n, e))?)))
        }),
        f("fromJson", |n, a| {
            arity(n, a, 1)?;
            let text = String::from_utf8(bytes_of(n, &a[0])?).map_err(|_| err(n, "the input is not UTF-8"))?;
            budget::check_json_depth(n, &text)?;
            from_json_text(&text).map_err(|e| err(n, e))
        }),
        f("toYaml", |n, a| {
            arity(n, a, 1)?;
            budget::check_encoded_len(n, &a[0], true)?;
            Ok(s(&text_to_engine(&to_yaml(&a[0]).map_err(|e| err(n, e))?)))
        }),
        f("fromYaml", |n, a| {
            arity(n, a, 1)?;
            let text = String::from_utf8(bytes_of(n, &a[0])?).map_err(|_| err(n, "the input is not UTF-8"))?;
            budget::check_json_depth(n, &text)?;
            let v: serde_json::Value = serde_saphyr::from_str(&text).map_err(|_| err(n, "the input is not valid YAML"))?;
            let v = from_serde(&v);
            budget::check_depth(n, std::slice::from_ref(&v))?;
            Ok(v)
        }),
        f("toString", |n, a| {
            arity(n, a, 1)?;
            Ok(s(&strval(n, &a[0])?))
        }),
        f("sha256sum", |n, a| {
            arity(n, a, 1)?;
            let digest = sha2::Sha256::digest(bytes_of(n, &a[0])?);
            Ok(s(&digest.iter().map(|b| format!("{b:02x}")).collect::<String>()))
        }),
        f("list", |n, a| {
            budget::check_depth(n, a)?;
            Ok(Value::List(a.to_vec().into()))
        }),
        f("dict", |n, a| {
            if a.len() % 2 != 0 {
                return Err(err(n, "needs key/value pairs"));
            }
            budget::check_depth(n, a)?;
            let pairs = a.chunks(2).map(|kv| Ok((Arc::from(strval(n, &kv[0])?.as_str()), kv[1].clone())));
            Ok(Value::Map(Arc::new(pairs.collect::<Result<_, TemplateError>>()?)))
        }),
        f("get", |n, a| {
            arity(n, a, 2)?;
            Ok(map_of(n, &a[0])?.get(strval(n, &a[1])?.as_str()).cloned().unwrap_or_else(|| s("")))
        }),
        f("hasKey", |n, a| {
            arity(n, a, 2)?;
            Ok(Value::Bool(map_of(n, &a[0])?.contains_key(strval(n, &a[1])?.as_str())))
        }),
        f("keys", |n, a| {
            let mut keys = Vec::new();
            for m in a {
                keys.extend(map_of(n, m)?.keys().map(|k| Value::String(k.clone())));
            }
            Ok(Value::List(keys.into()))
        }),
        f("join", |n, a| {
            arity(n, a, 2)?;
            let sep = strval(n, &a[0])?;
            let items: &[Value] = match &a[1] {
                Value::List(l) => l,
                other => std::slice::from_ref(other),
            };
            let mut out = String::new();
            for (i, item) in items.iter().enumerate() {
                let item = strval(n, item)?;
                let add = item.len() + if i > 0 { sep.len() } else { 0 };
                if out.len().saturating_add(add) > MAX_STRING {
                    budget::reserve(n, MAX_STRING + 1)?;
                }
                if i > 0 {
                    out.push_str(&sep);
                }
                out.push_str(&item);
            }
            Ok(s(&out))
        }),
        f("split", |n, a| {
            arity(n, a, 2)?;
            let (sep, v) = (strval(n, &a[0])?, strval(n, &a[1])?);
            reserve_items(n, &sep, &v)?;
            Ok(Value::Map(Arc::new(v.split(sep.as_str()).enumerate().map(|(i, p)| (Arc::from(format!("_{i}").as_str()), s(p))).collect())))
        }),
        f("splitList", |n, a| {
            arity(n, a, 2)?;
            let (sep, v) = (strval(n, &a[0])?, strval(n, &a[1])?);
            reserve_items(n, &sep, &v)?;
            Ok(Value::List(v.split(sep.as_str()).map(s).collect::<Vec<_>>().into()))
        }),
        f("regexReplaceAll", |n, a| {
            arity(n, a, 3)?;
            let re = regex::Regex::new(&engine_key(&strval(n, &a[0])?)).map_err(|_| err(n, "invalid regular expression"))?;
            let (input, repl) = (engine_key(&strval(n, &a[1])?), engine_key(&strval(n, &a[2])?));
            Ok(s(&text_to_engine(&regex_replace_all(n, &re, &input, &repl)?)))
        }),
        f("regexMatch", |n, a| {
            arity(n, a, 2)?;
            let re = regex::Regex::new(&engine_key(&strval(n, &a[0])?)).map_err(|_| err(n, "invalid regular expression"))?;
            Ok(Value::Bool(re.is_match(&engine_key(&strval(n, &a[1])?))))
        }),
        // ESO's `filterPEM TYPE input`: the PEM blocks of that type (case-insensitive), re-encoded
        // as Go's pem.Encode does (64-column base64, LF).
        f("filterPEM", |n, a| {
            arity(n, a, 2)?;
            let wanted = engine_key(&strval(n, &a[0])?);
            let blocks = pem::parse_many(bytes_of(n, &a[1])?).map_err(|_| err(n, "the input holds no valid PEM block"))?;
            let kept: Vec<pem::Pem> = blocks.into_iter().filter(|b| b.tag().eq_ignore_ascii_case(&wanted)).collect();
            let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
            // Go writes each block with its own trailing newline, back to back (no blank line).
            Ok(s(&text_to_engine(&kept.iter().map(|b| pem::encode_config(b, config)).collect::<String>())))
        }),
        // Go's `index` returns the zero value for an absent map key, and ESO's data is a
        // map[string]string: `index . "missing"` is "" (so `| default` works), not an error.
        f("index", |n, a| {
            if a.len() < 2 {
                return Err(TemplateError::ArgCount { name: n.into(), expected: 2, got: a.len() });
            }
            let mut v = a[0].clone();
            for idx in &a[1..] {
                v = match (&v, idx) {
                    (Value::Map(m), key) => m.get(strval(n, key)?.as_str()).cloned().unwrap_or_else(|| s("")),
                    _ => v.index(idx).map_err(|_| err(n, "the index is out of range or of the wrong type"))?,
                };
            }
            Ok(v)
        }),
    ];
    m.extend(entries);
    // Go's builtins, bounded and with value-free errors.
    m.extend(super::builtins::functions());
    // PKCS#12 and JWK functions (ESO's `pkcs12*`, `pemToPkcs12*`, `fullPemToPkcs12*`, `jwk*Pem`).
    m.extend(super::crypto::functions());
    for name in NOT_YET {
        let name: &'static str = name;
        m.insert(name.to_string(), Arc::new(move |_: &[Value]| Err(err(name, "this ESO function is not supported yet"))));
    }
    for name in REFUSED {
        let name: &'static str = name;
        m.insert(
            name.to_string(),
            Arc::new(move |_: &[Value]| {
                Err(err(
                    name,
                    "not available: templates must render the same bytes for the same input (no environment, clock or randomness)",
                ))
            }),
        );
    }
    let mut guarded: FuncMap = m.into_iter().map(|(name, func)| (name.clone(), guard(name, func))).collect();
    guarded.insert(
        super::instrument::TICK.to_string(),
        Arc::new(|_: &[Value]| {
            budget::tick("execution")?;
            Ok(s(""))
        }),
    );
    guarded
}

/// Functions whose result is (part of) an operand, not something they build: not charged again.
const PASS_THROUGH: &[&str] = &["default", "coalesce", "ternary", "index", "get", "slice", "fail"];

/// `func` under the budget: a checkpoint before, its result charged after, and any error that is
/// not one of ours (value-free) replaced by one naming only the function.
fn guard(name: String, func: gotmpl::ValueFunc) -> gotmpl::ValueFunc {
    let charge = !PASS_THROUGH.contains(&name.as_str());
    Arc::new(move |a: &[Value]| {
        budget::tick(&name)?;
        match func(a) {
            Ok(v) => {
                if charge {
                    budget::charge_value(&name, &v)?;
                }
                Ok(v)
            }
            Err(TemplateError::Exec(m)) if !budget::active() || budget::is_own(&m) => Err(TemplateError::Exec(m)),
            Err(e @ TemplateError::ArgCount { .. }) => Err(e),
            Err(_) => Err(err(&name, "failed (the reason is withheld: it may quote a value)")),
        }
    })
}

/// Checks the items `splitList`/`split` would build (one per separator found) fit the budget.
fn reserve_items(name: &str, sep: &str, text: &str) -> Result<(), TemplateError> {
    let items = if sep.is_empty() { text.chars().count() } else { text.matches(sep).count() + 1 };
    budget::reserve(name, items.saturating_mul(budget::ITEM_COST).min(MAX_STRING))?;
    budget::reserve(name, text.len())
}

/// `regexReplaceAll`, checking before each replacement that the result stays within
/// [`MAX_STRING`] (a `$1` expands to at most the whole match).
fn regex_replace_all(name: &str, re: &regex::Regex, input: &str, repl: &str) -> Result<String, TemplateError> {
    let refs = repl.matches('$').count();
    let mut out = String::new();
    let mut last = 0;
    for caps in re.captures_iter(input) {
        budget::tick(name)?;
        let Some(m) = caps.get(0) else { continue };
        let bound = out.len() + (m.start() - last) + repl.len() + refs.saturating_mul(m.len());
        if bound > MAX_STRING {
            budget::reserve(name, MAX_STRING + 1)?;
        }
        out.push_str(&input[last..m.start()]);
        caps.expand(repl, &mut out);
        last = m.end();
    }
    if out.len() + (input.len() - last) > MAX_STRING {
        budget::reserve(name, MAX_STRING + 1)?;
    }
    out.push_str(&input[last..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(v: &Value) -> String {
        strval("t", v).unwrap()
    }

    fn call(name: &str, args: &[Value]) -> FResult {
        (library()[name])(args)
    }

    #[test]
    fn go_compatible_quoting_json_and_defaults() {
        assert_eq!(text(&call("quote", &[s("a\"b\n")]).unwrap()), "\"a\\\"b\\n\"");
        assert_eq!(
            text(
                &call("toJson", &[Value::Map(Arc::new(BTreeMap::from([(Arc::from("b"), s("<x>")), (Arc::from("a"), Value::Int(1))])))])
                    .unwrap()
            ),
            r#"{"a":1,"b":"\u003cx\u003e"}"#
        );
        assert_eq!(text(&call("default", &[s("x"), s("")]).unwrap()), "x");
        assert_eq!(text(&call("default", &[s("x"), s("y")]).unwrap()), "y");
        assert_eq!(text(&call("indent", &[Value::Int(2), s("a\nb")]).unwrap()), "  a\n  b");
        assert_eq!(text(&call("nindent", &[Value::Int(2), s("a\nb")]).unwrap()), "\n  a\n  b");
        assert_eq!(text(&call("sha256sum", &[s("abc")]).unwrap()), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn filter_pem_writes_blocks_back_to_back_as_go() {
        let input = "x\n-----BEGIN CERTIFICATE-----\nYQ==\n-----END CERTIFICATE-----\n-----BEGIN KEY-----\nYg==\n-----END KEY-----\n-----BEGIN CERTIFICATE-----\nYw==\n-----END CERTIFICATE-----\n";
        let out = text(&call("filterPEM", &[s("CERTIFICATE"), s(input)]).unwrap());
        assert_eq!(
            out,
            "-----BEGIN CERTIFICATE-----\nYQ==\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nYw==\n-----END CERTIFICATE-----\n"
        );
    }

    #[test]
    fn from_json_keeps_integers_as_written() {
        let v = call("fromJson", &[s(r#"{"appId":12345678,"f":1.5,"s":"x"}"#)]).unwrap();
        let m = map_of("t", &v).unwrap();
        assert_eq!(text(&m["appId"]), "12345678");
        assert_eq!(text(&m["f"]), "1.5");
    }

    #[test]
    fn binary_survives_b64_round_trips_and_bad_base64_fails_without_the_value() {
        let bin = to_engine(&[0, 159, 255, 10]);
        let enc = call("b64enc", &[s(&bin)]).unwrap();
        assert_eq!(text(&call("b64dec", &[enc]).unwrap()), bin);
        let e = call("b64dec", &[s("not-base64-SECRET")]).unwrap_err().to_string();
        assert!(!e.contains("SECRET"), "{e}");
    }
}
