//! Our versions of gotmpl's built-in functions (Go's `text/template` builtins), registered over
//! them: gotmpl's own build unbounded strings (`printf "%s%s" $x $x`, `%999999999d`) and put
//! operands in their messages (`len: cannot take length of 918273`, `index out of range: 7`).
//! These check sizes before building ([`super::budget`]) and name only the function and the
//! kind of problem. `and`/`or` stay the engine's (it evaluates them itself, lazily); `not` cannot
//! fail on a value.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use gotmpl::{TemplateError, Value};

use super::args::{arity, err, f, s, strval};
use super::budget::{self, Sink, MAX_STRING};

/// Bytes allowed per `printf` operand beyond its printed length (a formatted number).
const NUMBER_ROOM: usize = 400;
/// Growth of an operand under `%q`, `%x`, `%X` or `%U` (escapes and hex of UTF-8).
const ESCAPE_GROWTH: usize = 6;

/// The builtins this module replaces.
pub fn functions() -> Vec<(String, gotmpl::ValueFunc)> {
    vec![
        f("printf", printf),
        f("print", |n, a| print(n, a, false)),
        f("println", |n, a| print(n, a, true)),
        f("len", |n, a| {
            arity(n, a, 1)?;
            a[0].len().map(|l| Value::Int(l as i64)).ok_or_else(|| err(n, format!("cannot take the length of a {}", a[0].type_name())))
        }),
        f("slice", slice),
        f("html", |n, a| escaper(n, a, gotmpl::html_escape)),
        f("js", |n, a| escaper(n, a, gotmpl::js_escape)),
        f("urlquery", |n, a| escaper(n, a, gotmpl::url_encode)),
        f("call", |n, _| Err(err(n, "function values are not available in templates"))),
        f("eq", |n, a| {
            if a.len() < 2 {
                return Err(TemplateError::ArgCount { name: n.into(), expected: 2, got: a.len() });
            }
            for other in &a[1..] {
                if equal(n, &a[0], other)? {
                    return Ok(Value::Bool(true));
                }
            }
            Ok(Value::Bool(false))
        }),
        f("ne", |n, a| {
            arity(n, a, 2)?;
            Ok(Value::Bool(!equal(n, &a[0], &a[1])?))
        }),
        f("lt", |n, a| compare(n, a, |o| o == Ordering::Less)),
        f("le", |n, a| compare(n, a, |o| o != Ordering::Greater)),
        f("gt", |n, a| compare(n, a, |o| o == Ordering::Greater)),
        f("ge", |n, a| compare(n, a, |o| o != Ordering::Less)),
    ]
}

/// Go's `printf`, formatted by gotmpl's own (Go-exact) `printf` once the result is known to fit:
/// the format's widths and precisions, plus each operand's printed length (times
/// [`ESCAPE_GROWTH`] for escaping verbs), must stay within [`MAX_STRING`].
fn printf(name: &'static str, a: &[Value]) -> Result<Value, TemplateError> {
    let (format, operands) = a.split_first().ok_or(TemplateError::ArgCount { name: name.into(), expected: 1, got: 0 })?;
    let Value::String(format) = format else {
        return Err(err(name, format!("the format must be a string, not a {}", format.type_name())));
    };
    let spec = scan_format(format);
    let mut estimate = format.len().saturating_add(spec.widths);
    if spec.star {
        let star_room: u64 = operands
            .iter()
            .map(|v| match v {
                Value::Int(i) => i.unsigned_abs(),
                Value::Uint(u) => *u,
                _ => 0,
            })
            .fold(0, u64::saturating_add);
        estimate = estimate.saturating_add(usize::try_from(star_room).unwrap_or(usize::MAX));
    }
    let growth = if spec.escapes { ESCAPE_GROWTH } else { 1 };
    for v in operands {
        let printed = budget::display_len(v, MAX_STRING).ok_or_else(|| too_long(name))?;
        estimate = estimate.saturating_add(printed.saturating_mul(growth)).saturating_add(NUMBER_ROOM);
        if estimate > MAX_STRING {
            return Err(too_long(name));
        }
    }
    if estimate > MAX_STRING {
        return Err(too_long(name));
    }
    let template = engine_printf(operands.len());
    let data = Value::Map(Arc::new(
        [(Arc::from("f"), Value::String(format.clone())), (Arc::from("a"), Value::List(operands.to_vec().into()))].into_iter().collect(),
    ));
    template.execute_to_string(&data).map(|out| s(&out)).map_err(|_| err(name, "the operands do not fit the format"))
}

fn too_long(name: &str) -> TemplateError {
    err(name, format!("the result would be longer than {} MiB, the limit for one string", MAX_STRING >> 20))
}

/// What a format asks for: the sum of its written widths and precisions, whether one is `*`
/// (taken from an operand), and whether a verb escapes or hex-encodes.
struct FormatSpec {
    widths: usize,
    star: bool,
    escapes: bool,
}

fn scan_format(format: &str) -> FormatSpec {
    let mut spec = FormatSpec { widths: 0, star: false, escapes: false };
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            continue;
        }
        let mut number: usize = 0;
        while let Some(&c) = chars.peek() {
            match c {
                '0'..='9' => number = number.saturating_mul(10).saturating_add(c as usize - '0' as usize),
                '+' | '-' | '#' | ' ' | '.' | '[' | ']' | '*' => {
                    spec.widths = spec.widths.saturating_add(std::mem::take(&mut number));
                    spec.star |= c == '*';
                }
                _ => break,
            }
            chars.next();
        }
        spec.widths = spec.widths.saturating_add(number);
        if let Some(verb) = chars.next() {
            spec.escapes |= matches!(verb, 'q' | 'x' | 'X' | 'U');
        }
    }
    spec
}

thread_local! {
    static ENGINE_PRINTF: RefCell<HashMap<usize, Rc<gotmpl::Template>>> = RefCell::new(HashMap::new());
}

/// Operand counts whose `printf` template is kept for reuse (per thread).
const CACHED_ARITIES: usize = 16;

/// A template calling gotmpl's own `printf` with `.f` and the `n` items of `.a`.
fn engine_printf(n: usize) -> Rc<gotmpl::Template> {
    let build = || {
        let operands: String = (0..n).map(|i| format!(" (index .a {i})")).collect();
        let source = format!("{{{{printf .f{operands}}}}}");
        // The source is ours and valid; gotmpl's printf is the builtin (no library here).
        Rc::new(gotmpl::Template::new("printf").parse(&source).unwrap_or_else(|_| gotmpl::Template::new("printf")))
    };
    if n >= CACHED_ARITIES {
        return build();
    }
    ENGINE_PRINTF.with(|cache| cache.borrow_mut().entry(n).or_insert_with(build).clone())
}

/// Go's `print`/`println` (`fmt.Sprint`: a space between operands when neither is a string;
/// `fmt.Sprintln`: always, and a final newline), into a bounded sink.
fn print(name: &'static str, a: &[Value], line: bool) -> Result<Value, TemplateError> {
    use std::fmt::Write;
    let mut sink = Sink::new(name, MAX_STRING);
    let is_string = |v: &Value| matches!(v, Value::String(_));
    let mut result = Ok(());
    for (i, v) in a.iter().enumerate() {
        if i > 0 && (line || !(is_string(&a[i - 1]) || is_string(v))) {
            result = result.and(sink.write_str(" "));
        }
        result = result.and(match v {
            Value::String(t) => sink.write_str(t),
            other => write!(sink, "{other}"),
        });
    }
    if line {
        result = result.and(sink.write_str("\n"));
    }
    result.map_err(|_| too_long(name))?;
    Ok(s(&sink.text))
}

/// Go's `slice x [i [j [k]]]`: errors say which bound is wrong, never the bounds or the length.
fn slice(name: &'static str, a: &[Value]) -> Result<Value, TemplateError> {
    if a.is_empty() || a.len() > 4 {
        return Err(TemplateError::ArgCount { name: name.into(), expected: 1, got: a.len() });
    }
    let bound = |v: &Value| v.as_int().ok_or_else(|| err(name, format!("an index must be an integer, not a {}", v.type_name())));
    let bounds = a[1..].iter().map(bound).collect::<Result<Vec<i64>, _>>()?;
    let out_of_range = || err(name, "an index is out of range or the indexes are not in order");
    if a.len() == 4 {
        let Value::List(list) = &a[0] else {
            return Err(err(name, format!("cannot 3-index slice a {}", a[0].type_name())));
        };
        let (i, j, k) = (bounds[0], bounds[1], bounds[2]);
        if i < 0 || i > j || j > k || k > list.len() as i64 {
            return Err(out_of_range());
        }
        return Ok(Value::List(list[i as usize..j as usize].to_vec().into()));
    }
    match &a[0] {
        Value::List(_) | Value::String(_) => a[0].slice(bounds.first().copied(), bounds.get(1).copied()).map_err(|_| out_of_range()),
        other => Err(err(name, format!("cannot slice a {}", other.type_name()))),
    }
}

/// `html`, `js`, `urlquery` of one operand (nil prints as `<no value>`, as Go's `evalArgs`).
fn escaper(name: &'static str, a: &[Value], escape: fn(&str) -> String) -> Result<Value, TemplateError> {
    arity(name, a, 1)?;
    let text = match &a[0] {
        Value::Nil => "<no value>".to_string(),
        other => strval(name, other)?,
    };
    Ok(s(&escape(&text)))
}

/// Go's `eq` for two operands: basic kinds compare by value (int and uint by magnitude);
/// anything else is an error naming the types.
fn equal(name: &str, x: &Value, y: &Value) -> Result<bool, TemplateError> {
    Ok(match (x, y) {
        (Value::Nil, Value::Nil) => true,
        (Value::Nil, _) | (_, Value::Nil) => false,
        (Value::Bool(a), Value::Bool(b)) => a == b,
        (Value::Int(a), Value::Int(b)) => a == b,
        (Value::Uint(a), Value::Uint(b)) => a == b,
        (Value::Int(a), Value::Uint(b)) | (Value::Uint(b), Value::Int(a)) => *a >= 0 && *a as u64 == *b,
        (Value::Float(a), Value::Float(b)) => a == b,
        (Value::String(a), Value::String(b)) => a == b,
        (Value::List(_) | Value::Map(_) | Value::Function(_), _) => {
            return Err(err(name, format!("a {} cannot be compared", x.type_name())));
        }
        _ => return Err(incomparable(name, x, y)),
    })
}

fn incomparable(name: &str, x: &Value, y: &Value) -> TemplateError {
    err(name, format!("incompatible types for comparison ({} and {})", x.type_name(), y.type_name()))
}

/// Go's `lt`, `le`, `gt`, `ge`: numbers, and strings byte-wise.
fn compare(name: &str, a: &[Value], keep: fn(Ordering) -> bool) -> Result<Value, TemplateError> {
    arity(name, a, 2)?;
    let order = match (&a[0], &a[1]) {
        (Value::Int(x), Value::Int(y)) => x.cmp(y),
        (Value::Uint(x), Value::Uint(y)) => x.cmp(y),
        (Value::Int(x), Value::Uint(y)) => {
            if *x < 0 {
                Ordering::Less
            } else {
                (*x as u64).cmp(y)
            }
        }
        (Value::Uint(x), Value::Int(y)) => {
            if *y < 0 {
                Ordering::Greater
            } else {
                x.cmp(&(*y as u64))
            }
        }
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(y).ok_or_else(|| err(name, "NaN cannot be ordered"))?,
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (x, y) if x.type_name() != y.type_name() => return Err(incomparable(name, x, y)),
        (x, _) => return Err(err(name, format!("a {} cannot be ordered", x.type_name()))),
    };
    Ok(Value::Bool(keep(order)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &'static str, args: &[Value]) -> Result<String, String> {
        let f = functions().into_iter().find(|(n, _)| n == name).unwrap().1;
        budget::scope(|| f(args).map(|v| v.to_string()).map_err(|e| e.to_string()))
    }

    #[test]
    fn printf_formats_as_go_and_refuses_oversized_results() {
        let args =
            [s("%05.2f|%-4s|%x|%q|%v|%d"), Value::Float(2.71), s("ab"), Value::Int(255), s("a\"b"), Value::Bool(true), Value::Int(-7)];
        assert_eq!(call("printf", &args).unwrap(), "02.71|ab  |ff|\"a\\\"b\"|true|-7");
        assert!(call("printf", &[s("%0999999999d"), Value::Int(1)]).unwrap_err().contains("longer than 1 MiB"));
        assert!(call("printf", &[s("%*d"), Value::Int(99_999_999), Value::Int(1)]).unwrap_err().contains("longer than 1 MiB"));
        assert_eq!(call("printf", &[s("100%% %s")]).unwrap(), "100% %!s(MISSING)");
    }

    #[test]
    fn print_spaces_operands_as_go() {
        assert_eq!(call("print", &[s("a"), Value::Int(1), Value::Int(2), s("b")]).unwrap(), "a1 2b");
        assert_eq!(call("println", &[s("a"), Value::Int(1)]).unwrap(), "a 1\n");
    }
}
