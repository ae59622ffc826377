//! Templates: `spec.target.template` and `templateFrom`, so ESO manifests with templates render
//! unchanged, plus `dataFrom[].rewrite[].transform`.
//!
//! Two engines share one function library ([`funcs`]) and one byte model ([`bytes`]):
//! - Go `text/template` through `gotmpl` (ESO's `engineVersion: v2`, the default), with
//!   `missingkey=error` as ESO since v0.9.19 (#2497);
//! - handlebars, for new templates, chosen per ExternalSecret with the annotation
//!   `extsecret.io/template-engine: handlebars` (so the spec stays valid under ESO's CRD), with HTML
//!   escaping off and strict mode on.
//!
//! Errors name the template (its key), the position in it and the function, never a value: our
//! functions' messages are value-free by construction, the engines' own messages are replaced by
//! value-free ones ([`go_error_message`]), and `fail`'s message is shown only when it is a literal
//! of the template. Work is bounded per ExternalSecret ([`budget`]).

pub mod apply;
mod args;
pub mod budget;
mod builtins;
pub mod bytes;
pub mod crypto;
pub mod funcs;
mod instrument;
pub mod json;

use std::collections::BTreeMap;
use std::sync::Arc;

/// Annotation selecting the template engine of an ExternalSecret.
pub const ENGINE_ANNOTATION: &str = "extsecret.io/template-engine";

/// Template engine of an ExternalSecret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// Go text/template (ESO engine v2).
    Go,
    Handlebars,
}

impl Engine {
    /// From the ExternalSecret's annotations: `handlebars`, `go` (or absent) — anything else is an error.
    pub fn from_annotations(annotations: &BTreeMap<String, String>) -> Result<Engine, String> {
        match annotations.get(ENGINE_ANNOTATION).map(String::as_str) {
            None | Some("go") | Some("gotemplate") | Some("") => Ok(Engine::Go),
            Some("handlebars") => Ok(Engine::Handlebars),
            Some(other) => Err(format!("annotation {ENGINE_ANNOTATION}: unknown engine `{other}` (go or handlebars)")),
        }
    }
}

/// The data a template sees: key to bytes.
pub type Context = BTreeMap<String, Vec<u8>>;

/// Renders `source` (UTF-8 template text) against `context`; returns the rendered bytes.
/// `name` identifies the template in errors (e.g. `data.tls.crt`). Runs under the budget of the
/// enclosing [`budget::scope`] (one per ExternalSecret), or a fresh one.
pub fn render(engine: Engine, name: &str, source: &str, context: &Context) -> Result<Vec<u8>, String> {
    budget::scope(|| {
        budget::take_breach();
        let result = match engine {
            Engine::Go => render_go(name, source, context),
            Engine::Handlebars => render_handlebars(name, source, context),
        };
        result.map_err(|msg| withhold_values(msg, context))
    })
}

/// Replaces an error message that quotes any value of the context (engines may print operands).
fn withhold_values(msg: String, context: &Context) -> String {
    let leaks = context.values().filter(|v| v.len() >= 3).any(|v| {
        let engine = bytes::to_engine(v);
        let text = String::from_utf8_lossy(v);
        msg.contains(engine.as_str()) || msg.contains(text.as_ref())
    });
    if leaks {
        "template execution failed (the engine's message is withheld because it quotes a secret value)".into()
    } else {
        msg
    }
}

fn go_context(context: &Context) -> gotmpl::Value {
    gotmpl::Value::Map(Arc::new(
        context
            .iter()
            .map(|(k, v)| (Arc::from(bytes::text_to_engine(k).as_str()), gotmpl::Value::String(Arc::from(bytes::to_engine(v).as_str()))))
            .collect(),
    ))
}

/// `{{ end }}`/`{{ else }}` without an open block. Go's parser rejects them; gotmpl stops parsing
/// there and would silently drop the rest of the template.
fn stray_block_end(source: &str) -> Option<(usize, usize, &'static str)> {
    let mut depth = 0usize;
    let mut from = 0;
    while let Some(open) = source[from..].find("{{") {
        let start = from + open;
        let Some(close) = source[start..].find("}}") else { break };
        let action = source[start + 2..start + close].trim_start_matches('-').trim_end_matches('-').trim();
        from = start + close + 2;
        if action.starts_with("/*") {
            continue;
        }
        let word = action.split(|c: char| c.is_whitespace() || c == '(').next().unwrap_or("");
        let at = || (source[..start].matches('\n').count() + 1, start - source[..start].rfind('\n').map_or(0, |i| i + 1) + 1);
        match word {
            "if" | "range" | "with" | "define" | "block" => depth += 1,
            "end" if depth == 0 => return Some((at().0, at().1, "end")),
            "end" => depth -= 1,
            "else" if depth == 0 => return Some((at().0, at().1, "else")),
            _ => {}
        }
    }
    None
}

fn render_go(name: &str, source: &str, context: &Context) -> Result<Vec<u8>, String> {
    if let Some((line, col, word)) = stray_block_end(source) {
        return Err(format!("template: {name}:{line}:{col}: unexpected {{{{{word}}}}}"));
    }
    let engine_source = bytes::text_to_engine(source);
    let mut template = gotmpl::Template::new(name)
        .missing_key(gotmpl::MissingKey::Error)
        .max_range_iters(1_000_000)
        .funcs(funcs::library())
        .parse(&engine_source)
        .map_err(|e| bytes::engine_to_text(&e.to_string()).unwrap_or_else(|_| e.to_string()))?;
    // Budget checkpoints in every block body (the main body is stored under the template's name
    // when it is not empty).
    for define in template.templates().into_iter().map(str::to_string).collect::<Vec<_>>() {
        if let Some(tree) = template.lookup(&define).cloned() {
            template = template.add_parse_tree(&define, instrument::go_tree(tree));
        }
    }
    if template.lookup(name).is_none() {
        return Ok(Vec::new());
    }
    let mut sink = budget::Sink::output("output");
    template.execute_template_fmt(&mut sink, name, &go_context(context)).map_err(|e| {
        let msg = go_error_message(&e, &engine_source);
        let msg = bytes::engine_to_text(&msg).unwrap_or(msg);
        // Execution errors carry no position: point at the first use of the name they mention.
        let at = match &e {
            gotmpl::TemplateError::UndefinedFunction(f) => position_of(source, f, false),
            gotmpl::TemplateError::MissingKey { key } => position_of(source, key, true),
            gotmpl::TemplateError::Exec(_) => msg.split(':').next().and_then(|f| position_of(source, f.trim(), false)),
            _ => None,
        };
        match at {
            Some((line, col)) => format!("template: {name}:{line}:{col}: {msg}"),
            None => format!("template: {name}: {msg}"),
        }
    })?;
    bytes::from_engine(&sink.text)
}

/// A value-free message for a gotmpl execution error: ours as they are, the engine's replaced by
/// the kind of problem (they may quote an operand: `index out of range: 7`, `can't use 3 to
/// iterate ...`).
fn go_error_message(e: &gotmpl::TemplateError, source: &str) -> String {
    use gotmpl::TemplateError as E;
    match e {
        E::Exec(m) if budget::is_own(m) => literal_fail_only(m, source, &['"', '`']),
        E::Exec(m) => {
            const SAFE: &[&str] = &[
                "can't evaluate field ",
                "can't give argument to non-function",
                "nil is not a command",
                "cannot assign ",
                "unexpected break",
                "unexpected continue",
            ];
            if SAFE.iter().any(|p| m.starts_with(p)) {
                m.clone()
            } else if m.starts_with("can't use ") {
                "range: an integer can be iterated with one variable only".into()
            } else {
                "execution failed (the engine's message is withheld: it may quote a value)".into()
            }
        }
        E::Write => budget::take_breach().unwrap_or_else(|| "writing the output failed".into()),
        E::IndexOutOfRange { .. } => "index out of range".into(),
        E::FuncPanic { name, .. } => format!("{name}: failed unexpectedly (the reason is withheld: it may quote a value)"),
        E::UndefinedFunction(_)
        | E::UndefinedVariable(_)
        | E::UndefinedTemplate(_)
        | E::MissingKey { .. }
        | E::ArgCount { .. }
        | E::TypeMismatch { .. }
        | E::NotIterable(_)
        | E::RecursionLimit
        | E::RangeIterLimit => e.to_string(),
        _ => "execution failed (the engine's message is withheld: it may quote a value)".into(),
    }
}

/// `msg` as it is, unless it is `fail`'s and its text is not a literal (between `quotes`) of the
/// template `source`: a message computed from values is withheld.
fn literal_fail_only(msg: &str, source: &str, quotes: &[char]) -> String {
    match msg.strip_prefix("fail: ") {
        Some(text) if !quotes.iter().any(|q| source.contains(&format!("{q}{text}{q}"))) => {
            "fail: called with a message that is not a literal of the template (withheld)".into()
        }
        _ => msg.to_string(),
    }
}

/// Line and column (1-based) of the first whole-word use of `word` inside an action (`{{ }}`);
/// `field` looks for `.word`.
fn position_of(source: &str, word: &str, field: bool) -> Option<(usize, usize)> {
    if word.is_empty() {
        return None;
    }
    let needle = if field { format!(".{word}") } else { word.to_string() };
    let mut from = 0;
    while let Some(found) = source[from..].find(&needle) {
        let start = from + found;
        let end = start + needle.len();
        let before_ok = field || source[..start].chars().next_back().is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '.'));
        let after_ok = source[end..].chars().next().is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        let in_action = source[..start].rfind("{{").is_some_and(|open| source[open..start].find("}}").is_none());
        if before_ok && after_ok && in_action {
            let line = source[..start].matches('\n').count() + 1;
            let col = start - source[..start].rfind('\n').map_or(0, |i| i + 1) + 1;
            return Some((line, col));
        }
        from = end;
    }
    None
}

fn render_handlebars(name: &str, source: &str, context: &Context) -> Result<Vec<u8>, String> {
    let mut hb = handlebars::Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(handlebars::no_escape);
    for (fname, func) in funcs::library() {
        if fname != "index" {
            hb.register_helper(&fname, Box::new(FuncHelper(func)));
        }
    }
    hb.register_helper(
        instrument::HB_TICK,
        Box::new(FuncHelper(Arc::new(|_: &[gotmpl::Value]| {
            budget::tick("execution")?;
            Ok(gotmpl::Value::String(Arc::from("")))
        }))),
    );
    // `log` would write operands to the process's log.
    hb.register_helper("log", Box::new(FuncHelper(Arc::new(|_: &[gotmpl::Value]| Err(args::err("log", "not available"))))));
    // Partials can recurse without bound and take names computed from values: not offered.
    if source.contains("{{>") || source.contains("{{~>") || source.contains("{{#>") || source.contains("{{#*inline") {
        return Err(format!("template: {name}: partials (`{{{{> ...}}}}`, `{{{{#*inline}}}}`) are not supported"));
    }
    instrument::handlebars_nesting(source).map_err(|why| format!("template: {name}: {why}"))?;
    hb.register_template_string(name, instrument::handlebars_source(&bytes::text_to_engine(source))).map_err(|e| {
        // The parser's message quotes the source line (which may come from a Secret): position only.
        let at = e.pos().map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default();
        format!("template: {name}{at}: syntax error")
    })?;
    let data: serde_json::Map<String, serde_json::Value> =
        context.iter().map(|(k, v)| (bytes::text_to_engine(k), serde_json::Value::String(bytes::to_engine(v)))).collect();
    let mut sink = budget::Sink::output("output");
    hb.render_to_write(name, &data, &mut sink).map_err(|e| {
        let at = match (e.line_no, e.column_no) {
            (Some(l), Some(c)) => format!(":{l}:{c}"),
            _ => String::new(),
        };
        let reason = match (budget::take_breach(), e.reason()) {
            (Some(breach), _) => breach,
            (None, handlebars::RenderErrorReason::IOError(_)) => "writing the output failed".into(),
            (None, handlebars::RenderErrorReason::Other(m)) if m.starts_with("fail: ") => {
                literal_fail_only(m, &bytes::text_to_engine(source), &['"', '\''])
            }
            (None, other) => handlebars_reason(other),
        };
        let reason = bytes::engine_to_text(&reason).unwrap_or(reason);
        format!("template: {name}{at}: {reason}")
    })?;
    bytes::from_engine(&sink.text)
}

/// A handlebars error as a class of problem: its own messages may carry names computed from
/// values (a partial or helper name built by a subexpression), so none of their text is kept
/// except helper names, which are literals of the template and are checked to be identifiers.
fn handlebars_reason(reason: &handlebars::RenderErrorReason) -> String {
    use handlebars::RenderErrorReason as R;
    let ident = |n: &str| n.len() <= 64 && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    match reason {
        R::MissingVariable(_) => "a variable is missing (strict mode; use {{#if}} or `default` for optional keys)".into(),
        R::HelperNotFound(h) if ident(h) => format!("helper not found: {h}"),
        R::HelperNotFound(_) => "helper not found".into(),
        R::PartialNotFound(_) | R::PartialBlockNotFound | R::CannotIncludeSelf => "partials are not supported".into(),
        R::ParamNotFoundForIndex(h, i) => format!("{h}: parameter {i} is missing"),
        R::ParamNotFoundForName(h, _) => format!("{h}: a named parameter is missing"),
        R::ParamTypeMismatchForName(h, _, _) | R::HashTypeMismatchForName(h, _, _) | R::InvalidParamType(h) => {
            format!("{h}: a parameter has the wrong type")
        }
        R::BlockContentRequired => "a block needs content".into(),
        R::Other(m) => match m.split_once(':') {
            Some((f, _)) if ident(f) && budget::is_own(m) => m.clone(),
            Some((f, _)) if ident(f) => format!("{f} failed"),
            _ => "a helper failed".to_string(),
        },
        _ => "template execution failed".into(),
    }
}

/// A library function as a handlebars helper; values cross over as JSON.
struct FuncHelper(gotmpl::ValueFunc);

impl handlebars::HelperDef for FuncHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &handlebars::Helper<'rc>,
        _: &'reg handlebars::Handlebars<'reg>,
        _: &'rc handlebars::Context,
        _: &mut handlebars::RenderContext<'reg, 'rc>,
    ) -> Result<handlebars::ScopedJson<'rc>, handlebars::RenderError> {
        let failed = |e: gotmpl::TemplateError| {
            handlebars::RenderErrorReason::Other(match e {
                // Ours: `name: message`, value-free.
                gotmpl::TemplateError::Exec(m) => m,
                other => budget::own_message(h.name(), other),
            })
        };
        // Every argument and the result are copied whole between the engines (handlebars holds
        // JSON, our functions engine values): each copy is charged by its deep size, counted
        // before it is made, so `{{#with (list this this)}}` nested k deep cannot build 2^k items.
        for p in h.params() {
            budget::charge_copy(h.name(), deep_cost(p.value(), budget::MAX_BUILT)).map_err(failed)?;
        }
        let args: Vec<gotmpl::Value> = h.params().iter().map(|p| json_to_go(p.value())).collect();
        let out = (self.0)(&args).map_err(failed)?;
        budget::charge_copy(h.name(), go_deep_cost(&out, budget::MAX_BUILT)).map_err(failed)?;
        Ok(handlebars::ScopedJson::Derived(go_to_json(&out)))
    }
}

/// Bytes a deep copy of `v` costs (strings by length, every item [`budget::ITEM_COST`]), counted
/// without copying; `usize::MAX` as soon as it passes `limit` (the walk stops there, so a shared
/// structure of 2^k items costs at most `limit` steps).
fn deep_cost(v: &serde_json::Value, limit: usize) -> usize {
    let (mut total, mut stack) = (0usize, vec![v]);
    while let Some(v) = stack.pop() {
        total = total.saturating_add(budget::ITEM_COST);
        match v {
            serde_json::Value::String(s) => total = total.saturating_add(s.len()),
            serde_json::Value::Array(a) => stack.extend(a),
            serde_json::Value::Object(o) => {
                total = total.saturating_add(o.keys().map(String::len).sum());
                stack.extend(o.values());
            }
            _ => {}
        }
        if total > limit {
            return usize::MAX;
        }
    }
    total
}

/// As [`deep_cost`], for an engine value (whose lists and maps may share parts: each use counts).
fn go_deep_cost(v: &gotmpl::Value, limit: usize) -> usize {
    let (mut total, mut stack) = (0usize, vec![v]);
    while let Some(v) = stack.pop() {
        total = total.saturating_add(budget::ITEM_COST);
        match v {
            gotmpl::Value::String(s) => total = total.saturating_add(s.len()),
            gotmpl::Value::List(l) => stack.extend(l.iter()),
            gotmpl::Value::Map(m) => {
                total = total.saturating_add(m.keys().map(|k| k.len()).sum());
                stack.extend(m.values());
            }
            _ => {}
        }
        if total > limit {
            return usize::MAX;
        }
    }
    total
}

fn json_to_go(v: &serde_json::Value) -> gotmpl::Value {
    use gotmpl::Value as G;
    match v {
        serde_json::Value::Null => G::Nil,
        serde_json::Value::Bool(b) => G::Bool(*b),
        serde_json::Value::Number(n) => {
            n.as_i64().map(G::Int).or_else(|| n.as_u64().map(G::Uint)).unwrap_or_else(|| G::Float(n.as_f64().unwrap_or(0.0)))
        }
        serde_json::Value::String(s) => G::String(Arc::from(s.as_str())),
        serde_json::Value::Array(a) => G::List(a.iter().map(json_to_go).collect::<Vec<_>>().into()),
        serde_json::Value::Object(o) => G::Map(Arc::new(o.iter().map(|(k, v)| (Arc::from(k.as_str()), json_to_go(v))).collect())),
    }
}

fn go_to_json(v: &gotmpl::Value) -> serde_json::Value {
    use gotmpl::Value as G;
    match v {
        G::Nil => serde_json::Value::Null,
        G::Bool(b) => serde_json::Value::Bool(*b),
        G::Int(i) => serde_json::Value::from(*i),
        G::Uint(u) => serde_json::Value::from(*u),
        G::Float(f) => serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, serde_json::Value::Number),
        G::String(s) => serde_json::Value::String(s.to_string()),
        G::List(l) => serde_json::Value::Array(l.iter().map(go_to_json).collect()),
        G::Map(m) => serde_json::Value::Object(m.iter().map(|(k, v)| (k.to_string(), go_to_json(v))).collect()),
        _ => serde_json::Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(pairs: &[(&str, &[u8])]) -> Context {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect()
    }

    fn go(src: &str, c: &Context) -> Result<Vec<u8>, String> {
        render(Engine::Go, "t", src, c)
    }

    #[test]
    fn go_templates_render_like_text_template() {
        let c = ctx(&[("user", b"admin"), ("pass-word", b"p@ss"), ("cfg", br#"{"appId":12345678}"#)]);
        assert_eq!(go("{{ .user }}:{{ index . \"pass-word\" }}", &c).unwrap(), b"admin:p@ss");
        assert_eq!(
            go("{{- range $k, $v := . }}{{ $k }}={{ $v | upper }};{{ end -}}", &ctx(&[("a", b"x"), ("b", b"y")])).unwrap(),
            b"a=X;b=Y;"
        );
        assert_eq!(go("{{ printf \"%s-%d\" .user 7 }}", &c).unwrap(), b"admin-7");
        assert_eq!(go("{{ (.cfg | fromJson).appId }}", &c).unwrap(), b"12345678");
        assert_eq!(go("{{ if eq .user \"admin\" }}yes{{ else }}no{{ end }}", &c).unwrap(), b"yes");
    }

    #[test]
    fn missing_keys_follow_eso() {
        let c = ctx(&[("user", b"admin")]);
        let e = go("{{ .missing }}", &c).unwrap_err();
        assert!(e.contains("missing"), "{e}");
        assert_eq!(go("{{ index . \"missing\" | default \"x\" }}", &c).unwrap(), b"x");
        assert!(go("{{ .missing | default \"x\" }}", &c).is_err());
    }

    #[test]
    fn bytes_pass_through_pipelines() {
        let bin: Vec<u8> = vec![0, 1, 254, 255, b'\n'];
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &bin);
        let c = ctx(&[("ks", b64.as_bytes()), ("raw", &bin)]);
        assert_eq!(go("{{ .ks | b64dec | b64enc }}", &c).unwrap(), b64.as_bytes());
        assert_eq!(go("{{ .ks | b64dec }}", &c).unwrap(), bin);
        assert_eq!(go("é{{ .raw }}", &c).unwrap(), ["é".as_bytes(), &bin[..]].concat());
    }

    #[test]
    fn errors_give_positions_and_name_unsupported_functions_without_values() {
        let c = ctx(&[("pw", b"hunter2-secret")]);
        let e = go("line1\n{{ .pw | nosuchfunc }}", &c).unwrap_err();
        assert!(e.contains("nosuchfunc") && e.contains(":2:"), "{e}");
        let e = go("{{ .pw | filterCertChain \"leaf\" }}", &c).unwrap_err();
        assert!(e.contains("filterCertChain") && e.contains("not supported yet"), "{e}");
        let e = go("{{ .pw | b64dec }}", &c).unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        let e = go("{{ env \"HOME\" }}", &c).unwrap_err();
        assert!(e.contains("env"), "{e}");
    }

    #[test]
    fn stray_block_ends_are_errors_not_truncation() {
        let c = ctx(&[("s", b"v")]);
        assert_eq!(go("a{{ .s }}{{ end }}b", &c).unwrap_err(), "template: t:1:10: unexpected {{end}}");
        assert!(go("{{ if true }}x{{ end }}{{ else }}", &c).unwrap_err().contains("unexpected {{else}}"));
        assert_eq!(go("{{- range $k, $v := . }}{{ if $v }}{{ $k }}{{ else }}-{{ end }}{{ end -}}", &c).unwrap(), b"s");
        assert_eq!(go("{{/* {{ end }} */}}ok", &c).unwrap(), b"ok");
    }

    #[test]
    fn handlebars_errors_never_carry_names_computed_from_values() {
        let c = ctx(&[("s1", b"LEAK-CHECK-7-A"), ("b64", b"TEVBSy1DSEVDSy03LUY=")]);
        for src in [
            "{{> (b64dec b64)}}",
            "{{> (lower s1)}}",
            "{{#*inline \"p\"}}{{> p}}{{/inline}}{{> p}}",
            "apiKey=LEAK-CHECK-7-LIT {{s1}",
            "{{[LEAK-CHECK-7-LIT]}}",
        ] {
            let e = render(Engine::Handlebars, "t", src, &c).unwrap_err();
            assert!(!e.to_ascii_uppercase().contains("LEAK-CHECK"), "{src}: {e}");
        }
    }

    #[test]
    fn handlebars_shares_the_library_without_html_escaping() {
        let c = ctx(&[("user", b"<admin>"), ("pass-word", b"p&ss")]);
        let out = render(Engine::Handlebars, "t", "{{user}}:{{[pass-word]}}:{{b64enc user}}:{{upper (b64dec (b64enc user))}}", &c).unwrap();
        assert_eq!(out, b"<admin>:p&ss:PGFkbWluPg==:<ADMIN>");
        assert!(render(Engine::Handlebars, "t", "{{missing}}", &c).is_err());
    }
}
