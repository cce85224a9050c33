//! Values crossing between Rhai and JSON (parameters in, results and events out).
//!
//! Converting, printing, comparing and even dropping a value recurses once per level of
//! nesting, so a value nested thousands of levels deep overflows a thread's stack and aborts
//! the process. Every value rhaiflow takes in (parameters) or keeps (task and workflow results,
//! events) is therefore held to [`MAX_NESTING`] levels, the limit the YAML reader has too.

use rhai::{Dynamic, Map};
use serde_json::Value;

/// How many levels of arrays and maps a value rhaiflow converts or stores may nest.
pub const MAX_NESTING: usize = 64;

/// A value nested past [`MAX_NESTING`]; `what` names it ("the result of task `deep`").
#[derive(Debug, thiserror::Error)]
#[error("{what} nests arrays and maps more than {MAX_NESTING} levels deep, the limit for values rhaiflow converts or stores")]
pub struct NestedTooDeep {
    pub what: String,
}

/// Whether `value` nests at most [`MAX_NESTING`] levels; the walk stops at the limit, so it
/// never recurses deeper than that whatever it is given.
pub fn check_nesting(value: &Dynamic, what: impl FnOnce() -> String) -> Result<(), NestedTooDeep> {
    if nests_deeper(value, MAX_NESTING) {
        return Err(NestedTooDeep { what: what() });
    }
    Ok(())
}

/// The same check for JSON (a parameter as typed or read from a file).
pub fn check_json_nesting(value: &Value, what: impl FnOnce() -> String) -> Result<(), NestedTooDeep> {
    if json_nests_deeper(value, MAX_NESTING) {
        return Err(NestedTooDeep { what: what() });
    }
    Ok(())
}

/// Whether `value` holds more than `levels` levels of arrays and maps.
fn nests_deeper(value: &Dynamic, levels: usize) -> bool {
    // Nearly every value is neither (a task's result is mostly a number or a string): two
    // tests of its kind instead of two downcasts.
    if !value.is_array() && !value.is_map() {
        return false;
    }
    if let Some(array) = value.read_lock::<rhai::Array>() {
        return levels == 0 || array.iter().any(|v| nests_deeper(v, levels - 1));
    }
    if let Some(map) = value.read_lock::<Map>() {
        return levels == 0 || map.values().any(|v| nests_deeper(v, levels - 1));
    }
    false
}

fn json_nests_deeper(value: &Value, levels: usize) -> bool {
    let items: Box<dyn Iterator<Item = &Value>> = match value {
        Value::Array(items) => Box::new(items.iter()),
        Value::Object(map) => Box::new(map.values()),
        _ => return false,
    };
    levels == 0 || items.into_iter().any(|v| json_nests_deeper(v, levels - 1))
}

/// What stands in for the part of a value below [`MAX_NESTING`] where one reaches a
/// conversion unchecked: a string, so that an event can still be written.
const CUT_HERE: &str = "<nested too deep>";

/// A Rhai value as JSON. Values JSON cannot hold (task handles, closures) become their
/// display string, so an event can always be written. Below [`MAX_NESTING`] levels (which
/// `check_nesting` refuses where a value comes in) the rest is cut, never recursed into.
pub fn to_json(value: &Dynamic) -> Value {
    to_json_within(value, MAX_NESTING)
}

fn to_json_within(value: &Dynamic, levels: usize) -> Value {
    if value.is_unit() {
        return Value::Null;
    }
    if let Some(s) = value.read_lock::<rhai::ImmutableString>() {
        return Value::String(s.to_string());
    }
    if let Ok(i) = value.as_int() {
        return Value::from(i);
    }
    if let Ok(b) = value.as_bool() {
        return Value::Bool(b);
    }
    if let Ok(f) = value.as_float() {
        return serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null);
    }
    let deeper = |v: &Dynamic| match levels {
        0 => Value::String(CUT_HERE.into()),
        _ => to_json_within(v, levels - 1),
    };
    if let Some(array) = value.read_lock::<rhai::Array>() {
        return Value::Array(array.iter().map(deeper).collect());
    }
    if let Some(map) = value.read_lock::<Map>() {
        return Value::Object(map.iter().map(|(k, v)| (k.to_string(), deeper(v))).collect());
    }
    // A host type (a task handle, an error): its short type name, e.g. "<TaskHandle>".
    let name = value.type_name();
    Value::String(format!("<{}>", name.rsplit("::").next().unwrap_or(name)))
}

/// JSON as a Rhai value; below [`MAX_NESTING`] levels (refused where JSON comes in) the rest
/// is cut as `to_json` cuts it.
pub fn from_json(value: &Value) -> Dynamic {
    from_json_within(value, MAX_NESTING)
}

fn from_json_within(value: &Value, levels: usize) -> Dynamic {
    let deeper = |v: &Value| match levels {
        0 => Dynamic::from(CUT_HERE),
        _ => from_json_within(v, levels - 1),
    };
    match value {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => (*b).into(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from_int(i),
            None => Dynamic::from_float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => s.clone().into(),
        Value::Array(items) => Dynamic::from_array(items.iter().map(deeper).collect()),
        Value::Object(map) => Dynamic::from_map(map.iter().map(|(k, v)| (k.as_str().into(), deeper(v))).collect()),
    }
}

/// A result worth reporting: unit is "no result".
pub fn result_json(value: &Dynamic) -> Option<Value> {
    (!value.is_unit()).then(|| to_json(value))
}

/// A thrown value as a person reads it: strings without quotes.
pub fn display_value(value: &Dynamic) -> String {
    if let Some(s) = value.read_lock::<rhai::ImmutableString>() {
        return s.to_string();
    }
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_round_trips_through_rhai_values() {
        let value = json!({"a": 1, "b": [true, "x", 2.5], "c": {"d": null}});
        assert_eq!(to_json(&from_json(&value)), value);
    }

    fn nested(levels: usize) -> Dynamic {
        (0..levels).fold(Dynamic::from_array(vec![]), |inner, _| Dynamic::from_array(vec![inner]))
    }

    // A value nested 8,000 deep overflowed the stack in `to_json`: the process aborted.
    #[test]
    fn a_value_nested_past_the_limit_is_refused_and_cut_without_recursing_into_it() {
        assert!(check_nesting(&nested(MAX_NESTING - 1), String::new).is_ok());
        let err = check_nesting(&nested(MAX_NESTING), || "the result".into()).unwrap_err();
        assert!(err.to_string().starts_with("the result nests arrays and maps more than 64"), "{err}");
        let deep = nested(100_000);
        let json = to_json(&deep);
        assert!(check_json_nesting(&json, String::new).is_err());
        assert!(json.to_string().contains(CUT_HERE));
        std::mem::forget(deep); // dropping it would recurse 100,000 deep
    }

    #[test]
    fn unit_is_no_result() {
        assert_eq!(result_json(&Dynamic::UNIT), None);
        assert_eq!(result_json(&Dynamic::from_int(5)), Some(json!(5)));
    }
}
