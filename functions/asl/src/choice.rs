//! Choice Rules: data-test expressions and the `And`/`Or`/`Not` combinators.

use std::cmp::Ordering;

use serde_json::Value;
use time::OffsetDateTime;

use crate::error::{DefinitionError, EvalError};
use crate::fields::Fields;
use crate::path::{JsonPath, Scope};
use crate::timestamp;

/// A top-level Choice Rule and the state it leads to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Branch {
    pub(crate) rule: Rule,
    pub(crate) next: String,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Rule {
    And(Vec<Rule>),
    Or(Vec<Rule>),
    Not(Box<Rule>),
    Test { variable: JsonPath, test: Test },
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Test {
    String(Comparison, Operand<String>),
    Numeric(Comparison, Operand<f64>),
    Timestamp(Comparison, Operand<OffsetDateTime>),
    Boolean(Operand<bool>),
    Matches(Pattern),
    Is(TypeCheck, bool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Comparison {
    Equals,
    LessThan,
    GreaterThan,
    LessThanEquals,
    GreaterThanEquals,
}

const COMPARISONS: &[(&str, Comparison)] = &[
    ("Equals", Comparison::Equals),
    ("LessThan", Comparison::LessThan),
    ("GreaterThan", Comparison::GreaterThan),
    ("LessThanEquals", Comparison::LessThanEquals),
    ("GreaterThanEquals", Comparison::GreaterThanEquals),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TypeCheck {
    Null,
    Present,
    Numeric,
    String,
    Boolean,
    Timestamp,
}

const TYPE_CHECKS: &[(&str, TypeCheck)] = &[
    ("IsNull", TypeCheck::Null),
    ("IsPresent", TypeCheck::Present),
    ("IsNumeric", TypeCheck::Numeric),
    ("IsString", TypeCheck::String),
    ("IsBoolean", TypeCheck::Boolean),
    ("IsTimestamp", TypeCheck::Timestamp),
];

/// The right-hand side of a comparison: a literal, or (for `...Path` operators) a path.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Operand<T> {
    Literal(T),
    Path(JsonPath),
}

/// A `StringMatches` pattern: `*` matches any run of characters, `\*` and `\\` are literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern(Vec<PatternToken>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PatternToken {
    Wildcard,
    Char(char),
}

impl Branch {
    pub(crate) fn parse(value: &Value, location: String) -> Result<Self, DefinitionError> {
        let fields = Fields::new(value, location)?;
        let next = fields.required_string("Next")?.to_owned();
        let rule = Rule::parse_fields(&fields)?;
        Ok(Self { rule, next })
    }
}

impl Rule {
    fn parse(value: &Value, location: String) -> Result<Self, DefinitionError> {
        let fields = Fields::new(value, location)?;
        if fields.has("Next") {
            return Err(fields.invalid(
                "Next",
                "only top-level Choice Rules may have Next; rules inside And, Or and Not may not",
            ));
        }
        Self::parse_fields(&fields)
    }

    fn parse_fields(fields: &Fields<'_>) -> Result<Self, DefinitionError> {
        let operators: Vec<&str> = fields
            .keys()
            .filter(|key| !matches!(*key, "Next" | "Comment" | "Variable"))
            .collect();
        let [operator] = operators.as_slice() else {
            return Err(DefinitionError::Invalid {
                location: fields.location().to_owned(),
                message: format!(
                    "a Choice Rule needs exactly one of And, Or, Not or a comparison operator, found {operators:?}"
                ),
            });
        };
        let operator = *operator;
        match operator {
            "And" | "Or" | "Not" if fields.has("Variable") => Err(fields.invalid(
                "Variable",
                format!("a rule using {operator} must not have a Variable"),
            )),
            "And" | "Or" => {
                let items = fields
                    .array(operator)?
                    .filter(|items| !items.is_empty())
                    .ok_or_else(|| {
                        fields.invalid(operator, "must be a non-empty array of Choice Rules")
                    })?;
                let rules = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| Self::parse(item, format!("{}[{i}]", fields.at(operator))))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(if operator == "And" {
                    Self::And(rules)
                } else {
                    Self::Or(rules)
                })
            }
            "Not" => {
                let inner = fields.raw("Not").unwrap_or(&Value::Null);
                Ok(Self::Not(Box::new(Self::parse(inner, fields.at("Not"))?)))
            }
            _ => {
                let variable = fields
                    .path("Variable")?
                    .ok_or_else(|| fields.invalid("Variable", "is required by a comparison"))?;
                let test = Test::parse(fields, operator)?;
                Ok(Self::Test { variable, test })
            }
        }
    }

    pub(crate) fn evaluate(&self, scope: Scope<'_>) -> Result<bool, EvalError> {
        match self {
            Self::And(rules) => {
                for rule in rules {
                    if !rule.evaluate(scope)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Self::Or(rules) => {
                for rule in rules {
                    if rule.evaluate(scope)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Self::Not(rule) => Ok(!rule.evaluate(scope)?),
            Self::Test { variable, test } => test.evaluate(variable, scope),
        }
    }
}

impl Test {
    fn parse(fields: &Fields<'_>, operator: &str) -> Result<Self, DefinitionError> {
        let value = fields.raw(operator).unwrap_or(&Value::Null);
        let invalid = |message: &str| fields.invalid(operator, message);
        if let Some((_, check)) = TYPE_CHECKS.iter().find(|(name, _)| *name == operator) {
            let expected = value
                .as_bool()
                .ok_or_else(|| invalid("must be a boolean"))?;
            return Ok(Self::Is(*check, expected));
        }
        match operator {
            "StringMatches" => {
                let text = value.as_str().ok_or_else(|| invalid("must be a string"))?;
                return Pattern::parse(text).map(Self::Matches).ok_or_else(|| {
                    invalid("'\\' may only escape '*' or '\\' in a StringMatches pattern")
                });
            }
            "BooleanEquals" => {
                let flag = value
                    .as_bool()
                    .ok_or_else(|| invalid("must be a boolean"))?;
                return Ok(Self::Boolean(Operand::Literal(flag)));
            }
            "BooleanEqualsPath" => {
                return Ok(Self::Boolean(Operand::Path(path_operand(
                    fields, operator,
                )?)))
            }
            _ => {}
        }
        let unknown = || fields.invalid(operator, "is not a Choice Rule operator");
        let (kind, rest) = ["String", "Numeric", "Timestamp"]
            .iter()
            .find_map(|kind| operator.strip_prefix(kind).map(|rest| (*kind, rest)))
            .ok_or_else(unknown)?;
        let (name, is_path) = match rest.strip_suffix("Path") {
            Some(name) => (name, true),
            None => (rest, false),
        };
        let comparison = COMPARISONS
            .iter()
            .find(|(candidate, _)| *candidate == name)
            .map(|(_, comparison)| *comparison)
            .ok_or_else(unknown)?;
        if is_path {
            let path = path_operand(fields, operator)?;
            return Ok(match kind {
                "String" => Self::String(comparison, Operand::Path(path)),
                "Numeric" => Self::Numeric(comparison, Operand::Path(path)),
                _ => Self::Timestamp(comparison, Operand::Path(path)),
            });
        }
        Ok(match kind {
            "String" => Self::String(
                comparison,
                Operand::Literal(
                    value
                        .as_str()
                        .ok_or_else(|| invalid("must be a string"))?
                        .to_owned(),
                ),
            ),
            "Numeric" => Self::Numeric(
                comparison,
                Operand::Literal(value.as_f64().ok_or_else(|| invalid("must be a number"))?),
            ),
            _ => Self::Timestamp(
                comparison,
                Operand::Literal(value.as_str().and_then(timestamp::parse).ok_or_else(|| {
                    invalid("must be an RFC 3339 timestamp such as 2016-08-18T17:33:00Z")
                })?),
            ),
        })
    }

    fn evaluate(&self, variable: &JsonPath, scope: Scope<'_>) -> Result<bool, EvalError> {
        let value = variable.select(scope);
        if let Self::Is(TypeCheck::Present, expected) = self {
            return Ok(value.is_some() == *expected);
        }
        let value = value.ok_or_else(|| missing(variable))?;
        // A value of the wrong type never matches: Step Functions does not convert.
        Ok(match self {
            Self::Is(check, expected) => check.holds(value) == *expected,
            Self::String(comparison, operand) => {
                match (
                    value.as_str(),
                    operand.resolve(scope, |v| v.as_str().map(str::to_owned))?,
                ) {
                    (Some(left), Some(right)) => comparison.holds(java_string_order(left, &right)),
                    _ => false,
                }
            }
            Self::Numeric(comparison, operand) => {
                match (value.as_f64(), operand.resolve(scope, Value::as_f64)?) {
                    (Some(left), Some(right)) => left
                        .partial_cmp(&right)
                        .is_some_and(|order| comparison.holds(order)),
                    _ => false,
                }
            }
            Self::Timestamp(comparison, operand) => {
                let right = operand.resolve(scope, |v| v.as_str().and_then(timestamp::parse))?;
                match (value.as_str().and_then(timestamp::parse), right) {
                    (Some(left), Some(right)) => comparison.holds(left.cmp(&right)),
                    _ => false,
                }
            }
            Self::Boolean(operand) => {
                match (value.as_bool(), operand.resolve(scope, Value::as_bool)?) {
                    (Some(left), Some(right)) => left == right,
                    _ => false,
                }
            }
            Self::Matches(pattern) => value.as_str().is_some_and(|text| pattern.matches(text)),
        })
    }
}

fn path_operand(fields: &Fields<'_>, operator: &str) -> Result<JsonPath, DefinitionError> {
    fields
        .path(operator)?
        .ok_or_else(|| fields.invalid(operator, "must be a path"))
}

fn missing(path: &JsonPath) -> EvalError {
    EvalError::new(format!(
        "Invalid path '{path}': The choice state's condition path references an invalid value."
    ))
}

impl<T: Clone> Operand<T> {
    /// The operand's value, or `None` when a path operand holds a value of the wrong type.
    fn resolve(
        &self,
        scope: Scope<'_>,
        convert: impl Fn(&Value) -> Option<T>,
    ) -> Result<Option<T>, EvalError> {
        match self {
            Self::Literal(value) => Ok(Some(value.clone())),
            Self::Path(path) => Ok(convert(path.select(scope).ok_or_else(|| missing(path))?)),
        }
    }
}

impl Comparison {
    fn holds(self, order: Ordering) -> bool {
        match self {
            Self::Equals => order == Ordering::Equal,
            Self::LessThan => order == Ordering::Less,
            Self::GreaterThan => order == Ordering::Greater,
            Self::LessThanEquals => order != Ordering::Greater,
            Self::GreaterThanEquals => order != Ordering::Less,
        }
    }
}

impl TypeCheck {
    fn holds(self, value: &Value) -> bool {
        match self {
            Self::Null => value.is_null(),
            Self::Present => true,
            Self::Numeric => value.is_number(),
            Self::String => value.is_string(),
            Self::Boolean => value.is_boolean(),
            Self::Timestamp => value.as_str().and_then(timestamp::parse).is_some(),
        }
    }
}

/// Step Functions orders strings like Java's `String.compareTo`: by UTF-16 code unit.
fn java_string_order(left: &str, right: &str) -> Ordering {
    left.encode_utf16().cmp(right.encode_utf16())
}

impl Pattern {
    fn parse(text: &str) -> Option<Self> {
        let mut tokens = Vec::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            let token = match c {
                '\\' => match chars.next()? {
                    escaped @ ('*' | '\\') => PatternToken::Char(escaped),
                    _ => return None,
                },
                '*' => PatternToken::Wildcard,
                other => PatternToken::Char(other),
            };
            tokens.push(token);
        }
        Some(Self(tokens))
    }

    fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        let tokens = &self.0;
        let (mut t, mut p) = (0, 0);
        // Where the last wildcard was, and how much text it has absorbed so far.
        let mut backtrack: Option<(usize, usize)> = None;
        while t < text.len() {
            match tokens.get(p) {
                Some(PatternToken::Char(c)) if *c == text[t] => {
                    t += 1;
                    p += 1;
                }
                Some(PatternToken::Wildcard) => {
                    backtrack = Some((p, t));
                    p += 1;
                }
                _ => match backtrack {
                    Some((star, absorbed)) => {
                        p = star + 1;
                        t = absorbed + 1;
                        backtrack = Some((star, absorbed + 1));
                    }
                    None => return false,
                },
            }
        }
        tokens[p..]
            .iter()
            .all(|token| *token == PatternToken::Wildcard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(value: Value) -> Rule {
        Rule::parse(&value, "Choices[0]".to_owned()).unwrap()
    }

    fn check(rule_json: Value, input: &Value) -> Result<bool, EvalError> {
        let context = json!({"Execution": {"Name": "exec-1"}});
        rule(rule_json).evaluate(Scope {
            input,
            context: &context,
        })
    }

    #[test]
    fn every_comparison_operator_and_its_path_variant() {
        let input = json!({
            "s": "b", "sa": "a", "sb": "b", "sc": "c",
            "n": 5, "n4": 4, "n5": 5.0, "n6": 6,
            "t": "2020-01-01T00:00:00Z",
            "t_early": "2019-12-31T23:59:59Z",
            "t_same": "2020-01-01T01:00:00+01:00",
            "t_late": "2020-01-01T00:00:00.001Z",
            "yes": true, "no": false,
        });
        // (operator, literal, path, expected against the variable's value)
        let cases: &[(&str, &str, Value, &str, bool)] = &[
            ("$.s", "StringEquals", json!("b"), "$.sb", true),
            ("$.s", "StringEquals", json!("a"), "$.sa", false),
            ("$.s", "StringLessThan", json!("c"), "$.sc", true),
            ("$.s", "StringLessThan", json!("b"), "$.sb", false),
            ("$.s", "StringGreaterThan", json!("a"), "$.sa", true),
            ("$.s", "StringGreaterThan", json!("b"), "$.sb", false),
            ("$.s", "StringLessThanEquals", json!("b"), "$.sb", true),
            ("$.s", "StringLessThanEquals", json!("a"), "$.sa", false),
            ("$.s", "StringGreaterThanEquals", json!("b"), "$.sb", true),
            ("$.s", "StringGreaterThanEquals", json!("c"), "$.sc", false),
            ("$.n", "NumericEquals", json!(5), "$.n5", true),
            ("$.n", "NumericEquals", json!(4), "$.n4", false),
            ("$.n", "NumericLessThan", json!(6), "$.n6", true),
            ("$.n", "NumericLessThan", json!(5), "$.n5", false),
            ("$.n", "NumericGreaterThan", json!(4), "$.n4", true),
            ("$.n", "NumericGreaterThan", json!(5), "$.n5", false),
            ("$.n", "NumericLessThanEquals", json!(5), "$.n5", true),
            ("$.n", "NumericLessThanEquals", json!(4), "$.n4", false),
            ("$.n", "NumericGreaterThanEquals", json!(5), "$.n5", true),
            ("$.n", "NumericGreaterThanEquals", json!(6), "$.n6", false),
            (
                "$.t",
                "TimestampEquals",
                json!("2020-01-01T01:00:00+01:00"),
                "$.t_same",
                true,
            ),
            (
                "$.t",
                "TimestampEquals",
                json!("2020-01-01T00:00:00.001Z"),
                "$.t_late",
                false,
            ),
            (
                "$.t",
                "TimestampLessThan",
                json!("2020-01-01T00:00:00.001Z"),
                "$.t_late",
                true,
            ),
            (
                "$.t",
                "TimestampLessThan",
                json!("2020-01-01T00:00:00Z"),
                "$.t_same",
                false,
            ),
            (
                "$.t",
                "TimestampGreaterThan",
                json!("2019-12-31T23:59:59Z"),
                "$.t_early",
                true,
            ),
            (
                "$.t",
                "TimestampGreaterThan",
                json!("2020-01-01T00:00:00Z"),
                "$.t_same",
                false,
            ),
            (
                "$.t",
                "TimestampLessThanEquals",
                json!("2020-01-01T00:00:00Z"),
                "$.t_same",
                true,
            ),
            (
                "$.t",
                "TimestampLessThanEquals",
                json!("2019-12-31T23:59:59Z"),
                "$.t_early",
                false,
            ),
            (
                "$.t",
                "TimestampGreaterThanEquals",
                json!("2020-01-01T00:00:00Z"),
                "$.t_same",
                true,
            ),
            (
                "$.t",
                "TimestampGreaterThanEquals",
                json!("2020-01-01T00:00:00.001Z"),
                "$.t_late",
                false,
            ),
            ("$.yes", "BooleanEquals", json!(true), "$.yes", true),
            ("$.yes", "BooleanEquals", json!(false), "$.no", false),
        ];
        for (variable, operator, literal, path, expected) in cases {
            let literal_rule = json!({"Variable": variable, *operator: literal});
            assert_eq!(
                check(literal_rule, &input),
                Ok(*expected),
                "{operator} {literal}"
            );
            let path_operator = format!("{operator}Path");
            let path_rule = json!({"Variable": variable, path_operator.clone(): path});
            assert_eq!(
                check(path_rule, &input),
                Ok(*expected),
                "{path_operator} {path}"
            );
        }
    }

    #[test]
    fn type_mismatches_never_match() {
        let input = json!({"str5": "5", "n": 5, "flag": "true", "notime": "2020-01-01", "s": "x"});
        for rule_json in [
            json!({"Variable": "$.str5", "NumericEquals": 5}),
            json!({"Variable": "$.n", "StringEquals": "5"}),
            json!({"Variable": "$.flag", "BooleanEquals": true}),
            json!({"Variable": "$.notime", "TimestampLessThan": "2030-01-01T00:00:00Z"}),
            json!({"Variable": "$.n", "TimestampEquals": "2030-01-01T00:00:00Z"}),
            json!({"Variable": "$.n", "StringMatches": "*"}),
            json!({"Variable": "$.s", "StringEqualsPath": "$.n"}),
            json!({"Variable": "$.n", "NumericEqualsPath": "$.str5"}),
        ] {
            assert_eq!(check(rule_json.clone(), &input), Ok(false), "{rule_json}");
        }
        // ...so Not of a mismatch is true.
        assert_eq!(
            check(
                json!({"Not": {"Variable": "$.str5", "NumericEquals": 5}}),
                &input
            ),
            Ok(true)
        );
    }

    #[test]
    fn type_checks_and_presence() {
        let input = json!({
            "null": null, "num": 1.5, "str": "x", "bool": false,
            "ts": "2016-08-18T17:33:00Z", "arr": [], "obj": {}
        });
        let cases: &[(&str, &str, bool)] = &[
            ("IsNull", "$.null", true),
            ("IsNull", "$.str", false),
            ("IsPresent", "$.null", true),
            ("IsPresent", "$.missing", false),
            ("IsPresent", "$.arr[0]", false),
            ("IsNumeric", "$.num", true),
            ("IsNumeric", "$.str", false),
            ("IsString", "$.str", true),
            ("IsString", "$.ts", true),
            ("IsString", "$.null", false),
            ("IsBoolean", "$.bool", true),
            ("IsBoolean", "$.str", false),
            ("IsTimestamp", "$.ts", true),
            ("IsTimestamp", "$.str", false),
            ("IsTimestamp", "$.num", false),
        ];
        for (operator, variable, holds) in cases {
            for expected in [true, false] {
                let rule_json = json!({"Variable": variable, *operator: expected});
                assert_eq!(
                    check(rule_json, &input),
                    Ok(holds == &expected),
                    "{operator}: {expected} on {variable}"
                );
            }
        }
    }

    #[test]
    fn a_missing_variable_is_a_run_time_error_except_for_is_present() {
        let input = json!({"a": 1});
        for rule_json in [
            json!({"Variable": "$.missing", "StringEquals": "x"}),
            json!({"Variable": "$.missing", "IsNull": true}),
            json!({"Variable": "$.a", "NumericEqualsPath": "$.missing"}),
            json!({"Not": {"Variable": "$.missing", "BooleanEquals": true}}),
        ] {
            let error = check(rule_json.clone(), &input).unwrap_err();
            assert!(
                error.0.starts_with("Invalid path '$.missing'"),
                "{rule_json}: {}",
                error.0
            );
        }
        assert_eq!(
            check(json!({"Variable": "$.missing", "IsPresent": false}), &input),
            Ok(true)
        );
    }

    #[test]
    fn string_matches_wildcards_and_escapes() {
        let cases: &[(&str, &str, bool)] = &[
            ("foo*.log", "foo23.log", true),
            ("*.log", "zebra.log", true),
            ("foo*.*", "foobar.zebra", true),
            ("foo*.log", "foo23.txt", false),
            ("*", "", true),
            ("", "", true),
            ("", "x", false),
            ("a*b*c", "aXXbYYbZc", true),
            ("a*b*c", "aXXbYYbZ", false),
            ("log-\\*", "log-*", true),
            ("log-\\*", "log-1", false),
            ("back\\\\slash*", "back\\slash!", true),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("**x", "abcx", true),
            ("é*ü", "éaü", true),
        ];
        for (pattern, text, expected) in cases {
            let input = json!({"v": text});
            assert_eq!(
                check(json!({"Variable": "$.v", "StringMatches": pattern}), &input),
                Ok(*expected),
                "{pattern:?} vs {text:?}"
            );
        }
    }

    #[test]
    fn string_order_is_by_utf16_code_unit() {
        // U+FF21 sorts after U+1F600 in UTF-8/code-point order but before it in UTF-16.
        let input = json!({"v": "\u{FF21}"});
        assert_eq!(
            check(
                json!({"Variable": "$.v", "StringLessThan": "\u{1F600}"}),
                &input
            ),
            Ok(false)
        );
        assert_eq!(
            check(
                json!({"Variable": "$.v", "StringGreaterThan": "\u{1F600}"}),
                &input
            ),
            Ok(true)
        );
        let input = json!({"v": "B"});
        assert_eq!(
            check(json!({"Variable": "$.v", "StringLessThan": "a"}), &input),
            Ok(true)
        );
    }

    #[test]
    fn and_or_not_combine_and_short_circuit() {
        let input = json!({"value": 22, "type": "Private"});
        let in_twenties = json!({"And": [
            {"Variable": "$.value", "NumericGreaterThanEquals": 20},
            {"Variable": "$.value", "NumericLessThan": 30}
        ]});
        assert_eq!(check(in_twenties, &input), Ok(true));
        let either = json!({"Or": [
            {"Variable": "$.value", "NumericEquals": 0},
            {"Variable": "$.type", "StringEquals": "Private"}
        ]});
        assert_eq!(check(either, &input), Ok(true));
        let neither = json!({"Or": [
            {"Variable": "$.value", "NumericEquals": 0},
            {"Not": {"Variable": "$.type", "StringEquals": "Private"}}
        ]});
        assert_eq!(check(neither, &input), Ok(false));
        // The second operand would fail, but And stops at the first false and Or at the first true.
        let and_short = json!({"And": [
            {"Variable": "$.value", "NumericEquals": 0},
            {"Variable": "$.missing", "NumericEquals": 0}
        ]});
        assert_eq!(check(and_short, &input), Ok(false));
        let or_short = json!({"Or": [
            {"Variable": "$.value", "NumericEquals": 22},
            {"Variable": "$.missing", "NumericEquals": 0}
        ]});
        assert_eq!(check(or_short, &input), Ok(true));
        let nested = json!({"Not": {"And": [
            {"Variable": "$.value", "IsNumeric": true},
            {"Not": {"Variable": "$$.Execution.Name", "StringEquals": "exec-1"}}
        ]}});
        assert_eq!(check(nested, &input), Ok(true));
    }

    #[test]
    fn rejects_malformed_rules() {
        let bad = [
            json!({"Variable": "$.a"}),
            json!({"Variable": "$.a", "StringEquals": "x", "NumericEquals": 1}),
            json!({"StringEquals": "x"}),
            json!({"Variable": "a", "StringEquals": "x"}),
            json!({"Variable": "$.a", "StringEquals": 1}),
            json!({"Variable": "$.a", "NumericEquals": "1"}),
            json!({"Variable": "$.a", "BooleanEquals": "true"}),
            json!({"Variable": "$.a", "TimestampEquals": "2020-01-01"}),
            json!({"Variable": "$.a", "IsNull": "yes"}),
            json!({"Variable": "$.a", "StringEqualsPath": "not a path"}),
            json!({"Variable": "$.a", "StringMatches": "bad\\escape"}),
            json!({"Variable": "$.a", "StringContains": "x"}),
            json!({"Variable": "$.a", "NumericMatches": 1}),
            json!({"And": []}),
            json!({"And": {"Variable": "$.a", "IsNull": true}}),
            json!({"Variable": "$.a", "And": [{"Variable": "$.a", "IsNull": true}]}),
            json!({"Not": {"Variable": "$.a", "IsNull": true, "Next": "X"}}),
            json!({"Or": [{"Variable": "$.a", "IsNull": true, "Next": "X"}]}),
            json!({"Condition": "{% true %}"}),
        ];
        for value in bad {
            assert!(
                Rule::parse(&value, "Choices[0]".to_owned()).is_err(),
                "{value} should be rejected"
            );
        }
        assert!(Branch::parse(
            &json!({"Variable": "$.a", "IsNull": true}),
            "Choices[0]".to_owned()
        )
        .is_err());
    }
}
