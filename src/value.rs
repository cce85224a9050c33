//! Values crossing between Rhai and JSON (parameters in, results and events out).

use rhai::{Dynamic, Map};
use serde_json::Value;

/// A Rhai value as JSON. Values JSON cannot hold (task handles, closures) become their
/// display string, so an event can always be written.
pub fn to_json(value: &Dynamic) -> Value {
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
    if let Some(array) = value.read_lock::<rhai::Array>() {
        return Value::Array(array.iter().map(to_json).collect());
    }
    if let Some(map) = value.read_lock::<Map>() {
        return Value::Object(map.iter().map(|(k, v)| (k.to_string(), to_json(v))).collect());
    }
    // A host type (a task handle, an error): its short type name, e.g. "<TaskHandle>".
    let name = value.type_name();
    Value::String(format!("<{}>", name.rsplit("::").next().unwrap_or(name)))
}

/// JSON as a Rhai value.
pub fn from_json(value: &Value) -> Dynamic {
    match value {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => (*b).into(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from_int(i),
            None => Dynamic::from_float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => s.clone().into(),
        Value::Array(items) => Dynamic::from_array(items.iter().map(from_json).collect()),
        Value::Object(map) => Dynamic::from_map(map.iter().map(|(k, v)| (k.as_str().into(), from_json(v))).collect()),
    }
}

/// A result worth reporting: unit is "no result".
pub fn result_json(value: &Dynamic) -> Option<Value> {
    (!value.is_unit()).then(|| to_json(value))
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

    #[test]
    fn unit_is_no_result() {
        assert_eq!(result_json(&Dynamic::UNIT), None);
        assert_eq!(result_json(&Dynamic::from_int(5)), Some(json!(5)));
    }
}
