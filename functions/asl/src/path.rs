//! The JsonPath subset the interpreter supports: Reference Paths made of `.field`,
//! `['field']` and `[index]` steps, rooted at the input (`$`) or the context object (`$$`).
//! Wildcards, filters, slices and recursive descent are rejected when parsing, so every
//! path identifies at most one node.

use std::fmt;

use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Root {
    Input,
    Context,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Field(String),
    Index(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JsonPath {
    text: String,
    root: Root,
    steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{path}' is not a supported path: {reason}")]
pub(crate) struct PathSyntaxError {
    path: String,
    reason: String,
}

/// The data a path is evaluated against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scope<'a> {
    pub(crate) input: &'a Value,
    pub(crate) context: &'a Value,
}

impl JsonPath {
    pub(crate) fn parse(text: &str) -> Result<Self, PathSyntaxError> {
        let fail = |reason: &str| PathSyntaxError {
            path: text.to_owned(),
            reason: reason.to_owned(),
        };
        let (root, rest) = if let Some(rest) = text.strip_prefix("$$") {
            (Root::Context, rest)
        } else if let Some(rest) = text.strip_prefix('$') {
            (Root::Input, rest)
        } else {
            return Err(fail("a path must start with '$'"));
        };
        let chars: Vec<char> = rest.chars().collect();
        let mut steps = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '.' => {
                    i += 1;
                    let start = i;
                    while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                        i += 1;
                    }
                    let name: String = chars[start..i].iter().collect();
                    if name.is_empty() {
                        return Err(fail(
                            "empty field name (recursive descent '..' is not supported)",
                        ));
                    }
                    if name == "*" {
                        return Err(fail("wildcards are not supported"));
                    }
                    steps.push(Step::Field(name));
                }
                '[' => {
                    i += 1;
                    match chars.get(i) {
                        Some(&quote @ ('\'' | '"')) => {
                            i += 1;
                            let mut name = String::new();
                            loop {
                                match chars.get(i) {
                                    None => return Err(fail("unterminated quoted field name")),
                                    Some('\\') => {
                                        let escaped = chars
                                            .get(i + 1)
                                            .ok_or_else(|| fail("dangling '\\'"))?;
                                        name.push(*escaped);
                                        i += 2;
                                    }
                                    Some(&c) if c == quote => {
                                        i += 1;
                                        break;
                                    }
                                    Some(&c) => {
                                        name.push(c);
                                        i += 1;
                                    }
                                }
                            }
                            if chars.get(i) != Some(&']') {
                                return Err(fail("expected ']' after a quoted field name"));
                            }
                            i += 1;
                            steps.push(Step::Field(name));
                        }
                        _ => {
                            let start = i;
                            while i < chars.len() && chars[i] != ']' {
                                i += 1;
                            }
                            if i == chars.len() {
                                return Err(fail("unterminated '['"));
                            }
                            let inner: String = chars[start..i].iter().collect();
                            i += 1;
                            if !inner.is_empty() && inner.chars().all(|c| c.is_ascii_digit()) {
                                let index = inner
                                    .parse()
                                    .map_err(|_| fail("array index is too large"))?;
                                steps.push(Step::Index(index));
                            } else {
                                return Err(fail(
                                    "only non-negative array indexes and quoted field names may appear in brackets \
                                     (wildcards, slices and filters are not supported)",
                                ));
                            }
                        }
                    }
                }
                _ => return Err(fail("expected '.' or '[' after the root or a step")),
            }
        }
        Ok(Self {
            text: text.to_owned(),
            root,
            steps,
        })
    }

    /// `$`: the whole input.
    pub(crate) fn input_root() -> Self {
        Self {
            text: "$".to_owned(),
            root: Root::Input,
            steps: Vec::new(),
        }
    }

    pub(crate) fn root(&self) -> Root {
        self.root
    }

    /// The node the path identifies, or `None` when nothing matches.
    pub(crate) fn select<'a>(&self, scope: Scope<'a>) -> Option<&'a Value> {
        let mut node = match self.root {
            Root::Input => scope.input,
            Root::Context => scope.context,
        };
        for step in &self.steps {
            node = match step {
                Step::Field(name) => node.as_object()?.get(name)?,
                Step::Index(index) => node.as_array()?.get(*index)?,
            };
        }
        Some(node)
    }

    /// Places `value` at this (input-rooted) path inside `target`, creating missing
    /// intermediate objects, as `ResultPath` does. Fails when a step meets a value of the
    /// wrong kind or an index past the end of an array.
    pub(crate) fn write(&self, mut target: Value, value: Value) -> Option<Value> {
        let mut slot = &mut target;
        for step in &self.steps {
            slot = match step {
                Step::Field(name) => {
                    let object = slot.as_object_mut()?;
                    object
                        .entry(name.clone())
                        .or_insert_with(|| Value::Object(Map::new()))
                }
                Step::Index(index) => slot.as_array_mut()?.get_mut(*index)?,
            };
        }
        *slot = value;
        Some(target)
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn select(path: &str, input: &Value) -> Option<Value> {
        let context = json!({"Execution": {"Id": "exec-1"}});
        JsonPath::parse(path)
            .unwrap()
            .select(Scope {
                input,
                context: &context,
            })
            .cloned()
    }

    #[test]
    fn selects_nodes_with_every_supported_step() {
        let input = json!({
            "a": {"b": [10, {"c": "deep"}], "x y": 1, "it's": 2},
            "n": null,
            "error-info": "dash"
        });
        let cases: &[(&str, Option<Value>)] = &[
            ("$", Some(input.clone())),
            ("$.a.b[0]", Some(json!(10))),
            ("$.a.b[1].c", Some(json!("deep"))),
            ("$['a']['b'][1]['c']", Some(json!("deep"))),
            ("$[\"a\"].b[0]", Some(json!(10))),
            ("$.a['x y']", Some(json!(1))),
            ("$.a['it\\'s']", Some(json!(2))),
            ("$.error-info", Some(json!("dash"))),
            ("$.n", Some(Value::Null)),
            ("$.missing", None),
            ("$.a.b[2]", None),
            ("$.a.b.c", None),
            ("$.a[0]", None),
            ("$.n.x", None),
            ("$$.Execution.Id", Some(json!("exec-1"))),
            ("$$.Execution.Missing", None),
        ];
        for (path, expected) in cases {
            assert_eq!(&select(path, &input), expected, "{path}");
        }
    }

    #[test]
    fn rejects_unsupported_or_malformed_paths() {
        for path in [
            "",
            "a.b",
            "$..a",
            "$.a.*",
            "$.a[*]",
            "$.a[0:2]",
            "$.a[-1]",
            "$.a[?(@.x)]",
            "$.a[",
            "$.a['b",
            "$.a['b'x",
            "$a",
            "$.",
            "$.a.",
        ] {
            assert!(
                JsonPath::parse(path).is_err(),
                "{path:?} should be rejected"
            );
        }
    }

    #[test]
    fn write_replaces_root_and_creates_intermediate_objects() {
        let path = |p: &str| JsonPath::parse(p).unwrap();
        assert_eq!(
            path("$").write(json!({"a": 1}), json!([1])),
            Some(json!([1]))
        );
        assert_eq!(
            path("$.r.s.t").write(json!({"a": 1}), json!("v")),
            Some(json!({"a": 1, "r": {"s": {"t": "v"}}}))
        );
        assert_eq!(
            path("$.a").write(json!({"a": {"old": true}}), json!(2)),
            Some(json!({"a": 2}))
        );
        assert_eq!(
            path("$.list[1].v").write(json!({"list": [0, {"v": 1}]}), json!(2)),
            Some(json!({"list": [0, {"v": 2}]}))
        );
        assert_eq!(path("$.a").write(json!("text"), json!(1)), None);
        assert_eq!(path("$.a.b").write(json!({"a": 5}), json!(1)), None);
        assert_eq!(path("$.list[3]").write(json!({"list": []}), json!(1)), None);
    }
}
