//! What every template function module shares: the result type, value-free errors, argument
//! checks and conversions, and registration (`funcs`, `builtins` and `crypto` use it, so none of
//! them imports another).

use std::sync::Arc;

use gotmpl::{TemplateError, Value};

use super::budget;
use super::bytes::from_engine;

pub(crate) type FResult = Result<Value, TemplateError>;

/// An error of a library function: `name: msg`. `msg` must not quote, measure or derive from a
/// value (recorded as ours, see [`budget::own_error`]).
pub(crate) fn err(name: &str, msg: impl std::fmt::Display) -> TemplateError {
    budget::own_error(name, msg)
}

/// A string value.
pub(crate) fn s(v: &str) -> Value {
    Value::String(Arc::from(v))
}

/// sprig's `strval`: strings as they are, everything else as Go's `%v` (bounded: an error for
/// function `name` beyond [`budget::MAX_STRING`]).
pub fn strval(name: &str, v: &Value) -> Result<String, TemplateError> {
    match v {
        Value::String(s) => Ok(s.to_string()),
        Value::Nil => Ok(String::new()),
        other => budget::display(name, other),
    }
}

/// `name` takes exactly `n` arguments (Go's "wrong number of args" as `ArgCount`).
pub(crate) fn arity(name: &str, args: &[Value], n: usize) -> Result<(), TemplateError> {
    if args.len() == n {
        Ok(())
    } else {
        Err(TemplateError::ArgCount { name: name.to_string(), expected: n, got: args.len() })
    }
}

/// The bytes of a byte-char string argument (see [`super::bytes`]).
pub(crate) fn bytes_of(name: &str, v: &Value) -> Result<Vec<u8>, TemplateError> {
    from_engine(&strval(name, v)?).map_err(|e| err(name, e))
}

/// A function of the library named `name`, as the engines register it.
pub(crate) fn f(
    name: &'static str,
    func: impl Fn(&'static str, &[Value]) -> FResult + Send + Sync + 'static,
) -> (String, gotmpl::ValueFunc) {
    (name.to_string(), Arc::new(move |args: &[Value]| func(name, args)))
}
