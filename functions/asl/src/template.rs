//! Payload templates (`Parameters`, `ResultSelector`): fields whose names end in `.$`
//! take their value from a path or an intrinsic function, at any depth.

use serde_json::{Map, Value};

use crate::error::{DefinitionError, EvalError};
use crate::intrinsics::{self, Intrinsic};
use crate::path::{JsonPath, Scope};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Template {
    /// A subtree with no `.$` fields, copied as is.
    Literal(Value),
    Object(Vec<(String, Template)>),
    Array(Vec<Template>),
    Path {
        field: String,
        path: JsonPath,
    },
    Intrinsic {
        field: String,
        call: Intrinsic,
    },
}

impl Template {
    /// Compiles a `Parameters`/`ResultSelector` value, which must be an object.
    pub(crate) fn compile(value: &Value, location: &str) -> Result<Self, DefinitionError> {
        if !value.is_object() {
            return Err(DefinitionError::Invalid {
                location: location.to_owned(),
                message: "a payload template must be a JSON object".to_owned(),
            });
        }
        Self::compile_value(value, location)
    }

    fn compile_value(value: &Value, location: &str) -> Result<Self, DefinitionError> {
        if !has_dynamic_fields(value) {
            return Ok(Self::Literal(value.clone()));
        }
        match value {
            Value::Object(fields) => {
                let mut compiled = Vec::with_capacity(fields.len());
                for (key, item) in fields {
                    let field_location = format!("{location}.{key}");
                    match key.strip_suffix(".$") {
                        Some(field) => {
                            if fields.contains_key(field) {
                                return Err(DefinitionError::Invalid {
                                    location: field_location,
                                    message: format!("both '{field}' and '{key}' are present"),
                                });
                            }
                            compiled.push((
                                field.to_owned(),
                                Self::dynamic(field, item, &field_location)?,
                            ));
                        }
                        None => compiled
                            .push((key.clone(), Self::compile_value(item, &field_location)?)),
                    }
                }
                Ok(Self::Object(compiled))
            }
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| Self::compile_value(item, &format!("{location}[{i}]")))
                .collect::<Result<_, _>>()
                .map(Self::Array),
            other => Ok(Self::Literal(other.clone())),
        }
    }

    fn dynamic(field: &str, value: &Value, location: &str) -> Result<Self, DefinitionError> {
        let invalid = |message: String| DefinitionError::Invalid {
            location: location.to_owned(),
            message,
        };
        let expression = value.as_str().ok_or_else(|| {
            invalid("the value of a field ending in '.$' must be a string".to_owned())
        })?;
        if expression.starts_with('$') {
            let path = JsonPath::parse(expression).map_err(|error| invalid(error.to_string()))?;
            Ok(Self::Path {
                field: field.to_owned(),
                path,
            })
        } else if expression.starts_with("States.") {
            let call = intrinsics::parse(expression).map_err(|error| invalid(error.to_string()))?;
            Ok(Self::Intrinsic {
                field: field.to_owned(),
                call,
            })
        } else {
            Err(invalid(format!(
                "'{expression}' is not a JSONPath or intrinsic function expression"
            )))
        }
    }

    pub(crate) fn render(&self, scope: Scope<'_>) -> Result<Value, EvalError> {
        match self {
            Self::Literal(value) => Ok(value.clone()),
            Self::Object(fields) => {
                let mut out = Map::new();
                for (key, template) in fields {
                    out.insert(key.clone(), template.render(scope)?);
                }
                Ok(Value::Object(out))
            }
            Self::Array(items) => items
                .iter()
                .map(|item| item.render(scope))
                .collect::<Result<_, _>>()
                .map(Value::Array),
            Self::Path { field, path } => path.select(scope).cloned().ok_or_else(|| {
                EvalError::new(format!(
                    "The JSONPath '{path}' specified for the field '{field}.$' could not be found in the input '{}'",
                    scope.input
                ))
            }),
            Self::Intrinsic { field, call } => call.evaluate(scope).map_err(|error| {
                EvalError::new(format!(
                    "The function specified for the field '{field}.$' failed: {error}"
                ))
            }),
        }
    }
}

fn has_dynamic_fields(value: &Value) -> bool {
    match value {
        Value::Object(fields) => fields
            .iter()
            .any(|(key, item)| key.ends_with(".$") || has_dynamic_fields(item)),
        Value::Array(items) => items.iter().any(has_dynamic_fields),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(template: Value, input: Value) -> Result<Value, EvalError> {
        let context = json!({"Execution": {"Id": "arn:exec"}, "State": {"RetryCount": 2}});
        Template::compile(&template, "Parameters")
            .unwrap()
            .render(Scope {
                input: &input,
                context: &context,
            })
    }

    #[test]
    fn replaces_dollar_fields_at_any_depth_and_keeps_literals() {
        let rendered = render(
            json!({
                "flagged": true,
                "parts": {"first.$": "$.vals[0]", "all.$": "$.vals"},
                "list": [{"id.$": "$$.Execution.Id"}, "plain", {"n": 1}],
                "retries.$": "$$.State.RetryCount",
                "label.$": "States.Format('v{}', $.vals[1])",
                "whole.$": "$"
            }),
            json!({"flagged": 7, "vals": [0, 10, 20]}),
        )
        .unwrap();
        assert_eq!(
            rendered,
            json!({
                "flagged": true,
                "parts": {"first": 0, "all": [0, 10, 20]},
                "list": [{"id": "arn:exec"}, "plain", {"n": 1}],
                "retries": 2,
                "label": "v10",
                "whole": {"flagged": 7, "vals": [0, 10, 20]}
            })
        );
    }

    #[test]
    fn a_missing_path_is_a_run_time_error_naming_the_field() {
        let error = render(json!({"name.$": "$.missing"}), json!({"other": 1})).unwrap_err();
        assert_eq!(
            error.0,
            "The JSONPath '$.missing' specified for the field 'name.$' could not be found in the input '{\"other\":1}'"
        );
        let error = render(
            json!({"n.$": "States.ArrayLength($.other)"}),
            json!({"other": 1}),
        )
        .unwrap_err();
        assert!(error.0.contains("'n.$'"), "{}", error.0);
    }

    #[test]
    fn rejects_invalid_templates_when_compiling() {
        for template in [
            json!("not an object"),
            json!([1]),
            json!({"a.$": 1}),
            json!({"a.$": "missing dollar"}),
            json!({"a.$": "$.a[*]"}),
            json!({"a.$": "States.Nope()"}),
            json!({"a": 1, "a.$": "$.b"}),
            json!({"nested": [{"a.$": "$$"}, {"b.$": "oops"}]}),
        ] {
            assert!(
                Template::compile(&template, "Parameters").is_err(),
                "{template} should be rejected"
            );
        }
    }
}
