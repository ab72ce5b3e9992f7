//! A small JSON Schema checker for the schemas in `deploy/schemas/`: `vigil model job`
//! checks the document it builds, and the system tests check every payload.
//!
//! The `jsonschema` crate would bring a regex engine, an HTTP client (unless trimmed) and
//! dozens of crates into the build on a 2-core machine; the schemas use a small subset of
//! draft 2020-12, which this checks exactly. A keyword it does not know panics, so a schema
//! can never use one that is silently ignored. (test.sh also checks that every schema is
//! valid draft 2020-12 when Python's `jsonschema` is there.)

use serde_json::Value;

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        other => panic!("unknown type {other}"),
    }
}

/// Checks `v` (found at `at`, `$` for the document) against `schema`, part of the schema
/// file `root`; `load` reads another schema file a `$ref` names. The error names the path
/// and the rule. A keyword the checker does not know panics: a schema must never use one
/// that would be silently ignored.
pub fn validate(
    root: &Value,
    schema: &Value,
    v: &Value,
    at: &str,
    load: &dyn Fn(&str) -> Value,
) -> Result<(), String> {
    let Some(rules) = schema.as_object() else {
        return Err(format!("{at}: schema is not an object"));
    };
    for (key, rule) in rules {
        match key.as_str() {
            "$schema" | "$id" | "title" | "description" | "$defs" => {}
            "$ref" => {
                let r = rule.as_str().unwrap();
                let target = if let Some(def) = r.strip_prefix("#/$defs/") {
                    root["$defs"][def].clone()
                } else {
                    load(r)
                };
                let new_root = if r.starts_with('#') {
                    root.clone()
                } else {
                    target.clone()
                };
                validate(&new_root, &target, v, at, load)?;
            }
            "type" => {
                let ok = match rule {
                    Value::String(t) => type_ok(t, v),
                    Value::Array(ts) => ts.iter().any(|t| type_ok(t.as_str().unwrap(), v)),
                    _ => panic!("bad type rule"),
                };
                if !ok {
                    return Err(format!("{at}: expected type {rule}, found {v}"));
                }
            }
            "const" if v != rule => return Err(format!("{at}: expected {rule}, found {v}")),
            "enum" if !rule.as_array().unwrap().contains(v) => {
                return Err(format!("{at}: expected one of {rule}, found {v}"));
            }
            "required" => {
                if let Some(o) = v.as_object() {
                    for k in rule.as_array().unwrap() {
                        if !o.contains_key(k.as_str().unwrap()) {
                            return Err(format!("{at}: missing {k}"));
                        }
                    }
                }
            }
            "properties" => {
                if let Some(o) = v.as_object() {
                    for (k, sub) in rule.as_object().unwrap() {
                        if let Some(x) = o.get(k) {
                            validate(root, sub, x, &format!("{at}.{k}"), load)?;
                        }
                    }
                }
            }
            "additionalProperties" => {
                if let Some(o) = v.as_object() {
                    let known = schema["properties"].as_object();
                    for (k, x) in o {
                        if known.is_some_and(|p| p.contains_key(k)) {
                            continue;
                        }
                        match rule {
                            Value::Bool(false) => {
                                return Err(format!("{at}: unexpected key {k:?}"));
                            }
                            Value::Bool(true) => {}
                            sub => validate(root, sub, x, &format!("{at}.{k}"), load)?,
                        }
                    }
                }
            }
            "items" => {
                if let Some(a) = v.as_array() {
                    let skip = schema["prefixItems"].as_array().map_or(0, |p| p.len());
                    for (i, x) in a.iter().enumerate().skip(skip) {
                        validate(root, rule, x, &format!("{at}[{i}]"), load)?;
                    }
                }
            }
            "prefixItems" => {
                if let Some(a) = v.as_array() {
                    for (i, (sub, x)) in rule.as_array().unwrap().iter().zip(a).enumerate() {
                        validate(root, sub, x, &format!("{at}[{i}]"), load)?;
                    }
                }
            }
            "minItems" | "maxItems" => {
                if let Some(a) = v.as_array() {
                    let n = rule.as_u64().unwrap() as usize;
                    let ok = if key == "minItems" {
                        a.len() >= n
                    } else {
                        a.len() <= n
                    };
                    if !ok {
                        return Err(format!("{at}: {key} {n}, found {} items", a.len()));
                    }
                }
            }
            "minLength" | "maxLength" => {
                if let Some(s) = v.as_str() {
                    let n = rule.as_u64().unwrap() as usize;
                    let len = s.chars().count();
                    let ok = if key == "minLength" {
                        len >= n
                    } else {
                        len <= n
                    };
                    if !ok {
                        return Err(format!("{at}: {key} {n}, found {len} characters"));
                    }
                }
            }
            "minimum" | "maximum" | "exclusiveMinimum" => {
                if let Some(x) = v.as_f64() {
                    let n = rule.as_f64().unwrap();
                    let ok = match key.as_str() {
                        "minimum" => x >= n,
                        "maximum" => x <= n,
                        _ => x > n,
                    };
                    if !ok {
                        return Err(format!("{at}: {key} {n}, found {x}"));
                    }
                }
            }
            "oneOf" => {
                let branches = rule.as_array().unwrap();
                let passing = branches
                    .iter()
                    .filter(|sub| validate(root, sub, v, at, load).is_ok())
                    .count();
                if passing != 1 {
                    let why: Vec<String> = branches
                        .iter()
                        .filter_map(|sub| validate(root, sub, v, at, load).err())
                        .collect();
                    return Err(format!(
                        "{at}: expected exactly one of {} forms to match, {passing} did ({})",
                        branches.len(),
                        why.join("; ")
                    ));
                }
            }
            "const" | "enum" => {}
            other => panic!("the schema checker does not know the keyword {other:?} (at {at})"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `oneOf`: exactly one form must match, as the model job's two operations are.
    #[test]
    fn one_of_takes_exactly_one_form() {
        let schema: Value =
            serde_json::from_str(include_str!("../../deploy/schemas/model-job.schema.json"))
                .unwrap();
        let check = |v: Value| {
            validate(&schema, &schema, &v, "$", &|name: &str| -> Value {
                panic!("no other schema: {name}")
            })
        };
        check(serde_json::json!({"operation": "model-rollback"})).unwrap();
        let error = check(serde_json::json!({"operation": "model-update"})).unwrap_err();
        assert!(error.contains("exactly one of 2 forms"), "{error}");
        assert!(error.contains("missing \"model\""), "{error}");
        assert!(check(serde_json::json!({"operation": "model-rollback", "model": {}})).is_err());
    }
}
