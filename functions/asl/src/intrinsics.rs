//! Intrinsic functions (`States.Format(...)` and friends), parsed once when the definition
//! is loaded and evaluated against a [`Scope`] at run time.

use rand::{Rng, SeedableRng};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256, Sha384, Sha512};

use crate::error::EvalError;
use crate::path::{JsonPath, Scope};

/// Step Functions allows at most 10 nested intrinsic calls in one field.
const MAX_NESTING: usize = 10;
/// Step Functions' limit on the string inputs of the encoding and hash functions.
const MAX_INPUT_CHARS: usize = 10_000;
/// Step Functions' limit on the arrays `States.ArrayRange` builds.
const MAX_RANGE_ITEMS: usize = 1_000;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Intrinsic {
    function: Function,
    args: Vec<Arg>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Function {
    Format,
    StringToJson,
    JsonToString,
    Array,
    ArrayPartition,
    ArrayContains,
    ArrayRange,
    ArrayGetItem,
    ArrayLength,
    ArrayUnique,
    Base64Encode,
    Base64Decode,
    Hash,
    JsonMerge,
    MathRandom,
    MathAdd,
    StringSplit,
    Uuid,
}

const FUNCTIONS: &[(&str, Function)] = &[
    ("Format", Function::Format),
    ("StringToJson", Function::StringToJson),
    ("JsonToString", Function::JsonToString),
    ("Array", Function::Array),
    ("ArrayPartition", Function::ArrayPartition),
    ("ArrayContains", Function::ArrayContains),
    ("ArrayRange", Function::ArrayRange),
    ("ArrayGetItem", Function::ArrayGetItem),
    ("ArrayLength", Function::ArrayLength),
    ("ArrayUnique", Function::ArrayUnique),
    ("Base64Encode", Function::Base64Encode),
    ("Base64Decode", Function::Base64Decode),
    ("Hash", Function::Hash),
    ("JsonMerge", Function::JsonMerge),
    ("MathRandom", Function::MathRandom),
    ("MathAdd", Function::MathAdd),
    ("StringSplit", Function::StringSplit),
    ("UUID", Function::Uuid),
];

impl Function {
    fn from_name(name: &str) -> Option<Self> {
        FUNCTIONS
            .iter()
            .find(|(candidate, _)| *candidate == name)
            .map(|(_, function)| *function)
    }

    fn name(self) -> &'static str {
        FUNCTIONS
            .iter()
            .find(|(_, function)| *function == self)
            .map_or("?", |(name, _)| name)
    }

    /// Minimum and maximum argument counts.
    fn arity(self) -> (usize, usize) {
        use Function::*;
        match self {
            Format => (1, usize::MAX),
            Array => (0, usize::MAX),
            Uuid => (0, 0),
            StringToJson | JsonToString | ArrayLength | ArrayUnique | Base64Encode
            | Base64Decode => (1, 1),
            ArrayPartition | ArrayContains | ArrayGetItem | Hash | MathAdd | StringSplit => (2, 2),
            MathRandom => (2, 3),
            ArrayRange | JsonMerge => (3, 3),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Arg {
    Str(StrLiteral),
    Literal(Value),
    Path(JsonPath),
    Call(Box<Intrinsic>),
}

/// A single-quoted string argument. `pieces` is the text between its unescaped `{}`
/// placeholders, which only `States.Format` gives a meaning to.
#[derive(Debug, Clone, PartialEq)]
struct StrLiteral {
    value: String,
    pieces: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{source_text}' is not a valid intrinsic function call: {reason}")]
pub(crate) struct IntrinsicSyntaxError {
    source_text: String,
    reason: String,
}

pub(crate) fn parse(source: &str) -> Result<Intrinsic, IntrinsicSyntaxError> {
    let mut parser = Parser {
        source,
        chars: source.chars().collect(),
        pos: 0,
    };
    parser.skip_whitespace();
    let call = parser.call(1)?;
    parser.skip_whitespace();
    if parser.peek().is_some() {
        return Err(parser.error("unexpected text after the call"));
    }
    Ok(call)
}

struct Parser<'a> {
    source: &'a str,
    chars: Vec<char>,
    pos: usize,
}

impl Parser<'_> {
    fn error(&self, reason: impl Into<String>) -> IntrinsicSyntaxError {
        IntrinsicSyntaxError {
            source_text: self.source.to_owned(),
            reason: reason.into(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.pos + offset).copied()
    }

    fn eat(&mut self, c: char) -> bool {
        let found = self.peek() == Some(c);
        if found {
            self.pos += 1;
        }
        found
    }

    fn starts_with(&self, text: &str) -> bool {
        text.chars()
            .enumerate()
            .all(|(offset, c)| self.peek_at(offset) == Some(c))
    }

    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn word(&mut self) -> String {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric()) {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    fn call(&mut self, depth: usize) -> Result<Intrinsic, IntrinsicSyntaxError> {
        if depth > MAX_NESTING {
            return Err(self.error(format!(
                "intrinsic functions may be nested at most {MAX_NESTING} deep"
            )));
        }
        if !self.starts_with("States.") {
            return Err(self.error("expected 'States.<Function>('"));
        }
        self.pos += "States.".len();
        let name = self.word();
        let function = Function::from_name(&name)
            .ok_or_else(|| self.error(format!("unknown intrinsic function 'States.{name}'")))?;
        self.skip_whitespace();
        if !self.eat('(') {
            return Err(self.error(format!("expected '(' after 'States.{name}'")));
        }
        self.skip_whitespace();
        let mut args = Vec::new();
        if !self.eat(')') {
            loop {
                args.push(self.arg(depth)?);
                self.skip_whitespace();
                if self.eat(',') {
                    self.skip_whitespace();
                } else if self.eat(')') {
                    break;
                } else {
                    return Err(self.error("expected ',' or ')' after an argument"));
                }
            }
        }
        let (min, max) = function.arity();
        if args.len() < min || args.len() > max {
            let expected = match (min, max) {
                (min, usize::MAX) => format!("at least {min}"),
                (min, max) if min == max => min.to_string(),
                (min, max) => format!("{min} to {max}"),
            };
            return Err(self.error(format!(
                "States.{name} takes {expected} argument(s), got {}",
                args.len()
            )));
        }
        if function == Function::Format {
            match &args[0] {
                Arg::Str(template) if template.pieces.len() != args.len() => {
                    return Err(self.error(format!(
                        "the template has {} '{{}}' placeholder(s) but {} value(s) follow it",
                        template.pieces.len() - 1,
                        args.len() - 1
                    )));
                }
                Arg::Literal(_) => {
                    return Err(self.error("the first argument of States.Format must be a string"));
                }
                _ => {}
            }
        }
        Ok(Intrinsic { function, args })
    }

    fn arg(&mut self, depth: usize) -> Result<Arg, IntrinsicSyntaxError> {
        match self.peek() {
            Some('\'') => self.string().map(Arg::Str),
            Some('$') => self.path().map(Arg::Path),
            Some('S') if self.starts_with("States.") => {
                self.call(depth + 1).map(|call| Arg::Call(Box::new(call)))
            }
            Some(c) if c == '-' || c.is_ascii_digit() => self.number(),
            Some(c) if c.is_ascii_alphabetic() => match self.word().as_str() {
                "true" => Ok(Arg::Literal(Value::Bool(true))),
                "false" => Ok(Arg::Literal(Value::Bool(false))),
                "null" => Ok(Arg::Literal(Value::Null)),
                other => Err(self.error(format!("unexpected argument '{other}'"))),
            },
            _ => Err(self.error("expected an argument")),
        }
    }

    fn string(&mut self) -> Result<StrLiteral, IntrinsicSyntaxError> {
        self.pos += 1;
        let mut value = String::new();
        let mut pieces = vec![String::new()];
        loop {
            let c = self
                .peek()
                .ok_or_else(|| self.error("unterminated string literal"))?;
            match c {
                '\'' => {
                    self.pos += 1;
                    break;
                }
                '\\' => match self.peek_at(1) {
                    Some(escaped @ ('\'' | '{' | '}' | '\\')) => {
                        value.push(escaped);
                        push_to_last(&mut pieces, escaped);
                        self.pos += 2;
                    }
                    _ => {
                        return Err(self.error(
                            "'\\' in a string literal must be followed by one of ' { } \\",
                        ))
                    }
                },
                '{' if self.peek_at(1) == Some('}') => {
                    value.push_str("{}");
                    pieces.push(String::new());
                    self.pos += 2;
                }
                '{' | '}' => {
                    return Err(self.error(format!(
                        "'{c}' in a string literal must be escaped as '\\{c}' unless it is part of a '{{}}' placeholder"
                    )))
                }
                _ => {
                    value.push(c);
                    push_to_last(&mut pieces, c);
                    self.pos += 1;
                }
            }
        }
        Ok(StrLiteral { value, pieces })
    }

    fn path(&mut self) -> Result<JsonPath, IntrinsicSyntaxError> {
        let start = self.pos;
        let mut brackets = 0usize;
        let mut quote: Option<char> = None;
        while let Some(c) = self.peek() {
            match (quote, c) {
                (Some(_), '\\') => self.pos += 1,
                (Some(open), c) if c == open => quote = None,
                (Some(_), _) => {}
                (None, '[') => brackets += 1,
                (None, ']') => brackets = brackets.saturating_sub(1),
                (None, '\'' | '"') if brackets > 0 => quote = Some(c),
                (None, ',' | ')') if brackets == 0 => break,
                (None, _) => {}
            }
            self.pos += 1;
        }
        let end = self.pos.min(self.chars.len());
        let text: String = self.chars[start..end].iter().collect();
        JsonPath::parse(text.trim_end()).map_err(|error| self.error(error.to_string()))
    }

    fn number(&mut self) -> Result<Arg, IntrinsicSyntaxError> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'))
        {
            self.pos += 1;
        }
        let text: String = self.chars[start..self.pos].iter().collect();
        let number: serde_json::Number = serde_json::from_str(&text)
            .map_err(|_| self.error(format!("'{text}' is not a valid number")))?;
        Ok(Arg::Literal(Value::Number(number)))
    }
}

fn push_to_last(pieces: &mut [String], c: char) {
    if let Some(last) = pieces.last_mut() {
        last.push(c);
    }
}

impl Arg {
    fn evaluate(&self, scope: Scope<'_>) -> Result<Value, EvalError> {
        match self {
            Arg::Str(literal) => Ok(Value::String(literal.value.clone())),
            Arg::Literal(value) => Ok(value.clone()),
            Arg::Path(path) => path.select(scope).cloned().ok_or_else(|| {
                EvalError::new(format!(
                    "The JSONPath '{path}' given to an intrinsic function could not be found in the input"
                ))
            }),
            Arg::Call(call) => call.evaluate(scope),
        }
    }
}

impl Intrinsic {
    pub(crate) fn evaluate(&self, scope: Scope<'_>) -> Result<Value, EvalError> {
        let values = self
            .args
            .iter()
            .map(|arg| arg.evaluate(scope))
            .collect::<Result<Vec<_>, _>>()?;
        let args = Args {
            function: self.function,
            values: &values,
        };
        match self.function {
            Function::Format => {
                let pieces: Vec<String> = match &self.args[0] {
                    Arg::Str(template) => template.pieces.clone(),
                    _ => args.string(0)?.split("{}").map(str::to_owned).collect(),
                };
                if pieces.len() != values.len() {
                    return Err(args.invalid(format!(
                        "the template has {} '{{}}' placeholder(s) but {} value(s) were given",
                        pieces.len() - 1,
                        values.len() - 1
                    )));
                }
                let mut out = pieces[0].clone();
                for (value, piece) in values[1..].iter().zip(&pieces[1..]) {
                    format_value(value, &mut out);
                    out.push_str(piece);
                }
                Ok(Value::String(out))
            }
            Function::StringToJson => serde_json::from_str(args.string(0)?)
                .map_err(|error| args.invalid(format!("the string is not JSON: {error}"))),
            Function::JsonToString => Ok(Value::String(values[0].to_string())),
            Function::Array => Ok(Value::Array(values)),
            Function::ArrayPartition => {
                let array = args.array(0)?;
                let size = args.integer(1)?;
                let size = usize::try_from(size)
                    .ok()
                    .filter(|size| *size > 0)
                    .ok_or_else(|| args.invalid("the chunk size must be a positive integer"))?;
                Ok(Value::Array(
                    array
                        .chunks(size)
                        .map(|chunk| Value::Array(chunk.to_vec()))
                        .collect(),
                ))
            }
            Function::ArrayContains => Ok(Value::Bool(args.array(0)?.contains(&values[1]))),
            Function::ArrayRange => {
                let (start, end, step) = (args.integer(0)?, args.integer(1)?, args.integer(2)?);
                if step <= 0 {
                    return Err(args.invalid("the step must be a positive integer"));
                }
                let mut items = Vec::new();
                let mut next = start;
                while next <= end {
                    if items.len() == MAX_RANGE_ITEMS {
                        return Err(args.invalid(format!(
                            "the range would have more than {MAX_RANGE_ITEMS} items"
                        )));
                    }
                    items.push(Value::from(next));
                    match next.checked_add(step) {
                        Some(following) => next = following,
                        None => break,
                    }
                }
                Ok(Value::Array(items))
            }
            Function::ArrayGetItem => {
                let array = args.array(0)?;
                let index = values[1]
                    .as_u64()
                    .ok_or_else(|| args.invalid("the index must be a non-negative integer"))?;
                usize::try_from(index)
                    .ok()
                    .and_then(|index| array.get(index))
                    .cloned()
                    .ok_or_else(|| {
                        args.invalid(format!(
                            "index {index} is out of bounds for an array of {} item(s)",
                            array.len()
                        ))
                    })
            }
            Function::ArrayLength => Ok(Value::from(args.array(0)?.len())),
            Function::ArrayUnique => {
                let mut unique: Vec<Value> = Vec::new();
                for item in args.array(0)? {
                    if !unique.contains(item) {
                        unique.push(item.clone());
                    }
                }
                Ok(Value::Array(unique))
            }
            Function::Base64Encode => {
                let text = args.limited_string(0)?;
                Ok(Value::String(base64::encode(text.as_bytes())))
            }
            Function::Base64Decode => {
                let text = args.limited_string(0)?;
                let bytes = base64::decode(text)
                    .ok_or_else(|| args.invalid("the string is not valid base64"))?;
                String::from_utf8(bytes)
                    .map(Value::String)
                    .map_err(|_| args.invalid("the decoded bytes are not UTF-8 text"))
            }
            Function::Hash => {
                let data = args.limited_string(0)?.as_bytes();
                let digest = match args.string(1)? {
                    "SHA-256" => hex::encode(Sha256::digest(data)),
                    "SHA-384" => hex::encode(Sha384::digest(data)),
                    "SHA-512" => hex::encode(Sha512::digest(data)),
                    unsupported @ ("MD5" | "SHA-1") => {
                        return Err(args.invalid(format!(
                            "the {unsupported} algorithm is not supported by this interpreter"
                        )))
                    }
                    other => {
                        return Err(args.invalid(format!(
                            "unknown algorithm '{other}' (expected MD5, SHA-1, SHA-256, SHA-384 or SHA-512)"
                        )))
                    }
                };
                Ok(Value::String(digest))
            }
            Function::JsonMerge => {
                let mut merged = args.object(0)?.clone();
                let second = args.object(1)?;
                let deep = values[2]
                    .as_bool()
                    .ok_or_else(|| args.invalid("the third argument must be a boolean"))?;
                if deep {
                    return Err(args.invalid(
                        "only shallow merging is supported; the third argument must be false",
                    ));
                }
                merged.extend(second.iter().map(|(k, v)| (k.clone(), v.clone())));
                Ok(Value::Object(merged))
            }
            Function::MathRandom => {
                let (start, end) = (args.integer(0)?, args.integer(1)?);
                if start > end {
                    return Err(args.invalid("the start must not be greater than the end"));
                }
                let number = match values.get(2) {
                    Some(_) => {
                        // Reinterpreting a negative seed's bits is fine: any seed is valid.
                        let seed = args.integer(2)? as u64;
                        rand::rngs::StdRng::seed_from_u64(seed).random_range(start..=end)
                    }
                    None => rand::rng().random_range(start..=end),
                };
                Ok(Value::from(number))
            }
            Function::MathAdd => {
                let (a, b) = (args.integer(0)?, args.integer(1)?);
                a.checked_add(b)
                    .map(Value::from)
                    .ok_or_else(|| args.invalid("the sum overflows"))
            }
            Function::StringSplit => {
                let text = args.string(0)?;
                let delimiters: Vec<char> = args.string(1)?.chars().collect();
                Ok(Value::Array(
                    text.split(delimiters.as_slice())
                        .filter(|part| !part.is_empty())
                        .map(|part| Value::String(part.to_owned()))
                        .collect(),
                ))
            }
            Function::Uuid => Ok(Value::String(uuid_v4())),
        }
    }
}

/// Evaluated arguments with typed accessors that produce Step Functions-style messages.
struct Args<'a> {
    function: Function,
    values: &'a [Value],
}

impl<'a> Args<'a> {
    fn invalid(&self, reason: impl std::fmt::Display) -> EvalError {
        EvalError::new(format!(
            "Invalid arguments in States.{}: {reason}",
            self.function.name()
        ))
    }

    fn wrong_type(&self, index: usize, expected: &str) -> EvalError {
        self.invalid(format!(
            "argument {} must be {expected}, got {}",
            index + 1,
            self.values[index]
        ))
    }

    fn string(&self, index: usize) -> Result<&'a str, EvalError> {
        self.values[index]
            .as_str()
            .ok_or_else(|| self.wrong_type(index, "a string"))
    }

    fn limited_string(&self, index: usize) -> Result<&'a str, EvalError> {
        let text = self.string(index)?;
        if text.chars().count() > MAX_INPUT_CHARS {
            return Err(self.invalid(format!(
                "the input is longer than {MAX_INPUT_CHARS} characters"
            )));
        }
        Ok(text)
    }

    fn array(&self, index: usize) -> Result<&'a Vec<Value>, EvalError> {
        self.values[index]
            .as_array()
            .ok_or_else(|| self.wrong_type(index, "an array"))
    }

    fn object(&self, index: usize) -> Result<&'a Map<String, Value>, EvalError> {
        self.values[index]
            .as_object()
            .ok_or_else(|| self.wrong_type(index, "an object"))
    }

    /// An integer argument; Step Functions rounds non-integers the way Java's `Math.round` does.
    fn integer(&self, index: usize) -> Result<i64, EvalError> {
        let value = &self.values[index];
        if let Some(integer) = value.as_i64() {
            return Ok(integer);
        }
        value
            .as_f64()
            .map(|float| (float + 0.5).floor())
            .filter(|rounded| rounded.is_finite() && rounded.abs() < 9.0e18)
            // The range check above makes the conversion exact.
            .map(|rounded| rounded as i64)
            .ok_or_else(|| self.wrong_type(index, "an integer"))
    }
}

/// Renders an argument of `States.Format` the way Step Functions does: strings verbatim,
/// arrays and objects in Java collection notation (`[1, 2]`, `{a=1}`).
fn format_value(value: &Value, out: &mut String) {
    match value {
        Value::String(text) => out.push_str(text),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                format_value(item, out);
            }
            out.push(']');
        }
        Value::Object(fields) => {
            out.push('{');
            for (i, (key, item)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(key);
                out.push('=');
                format_value(item, out);
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn uuid_v4() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill(&mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Standard base64 (RFC 4648 alphabet, with padding).
mod base64 {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub(super) fn encode(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for chunk in bytes.chunks(3) {
            let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
            let group = (byte(0) << 16) | (byte(1) << 8) | byte(2);
            for k in 0..4 {
                if k <= chunk.len() {
                    let sextet = (group >> (18 - 6 * k)) & 0x3f;
                    out.push(char::from(ALPHABET[sextet as usize]));
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    pub(super) fn decode(text: &str) -> Option<Vec<u8>> {
        let chunks = text.as_bytes().chunks_exact(4);
        if !chunks.remainder().is_empty() {
            return None;
        }
        let groups = chunks.len();
        let mut out = Vec::with_capacity(groups * 3);
        for (index, chunk) in chunks.enumerate() {
            let padding = chunk.iter().rev().take_while(|&&c| c == b'=').count();
            if padding > 2 || (padding > 0 && index + 1 != groups) {
                return None;
            }
            let mut group = 0u32;
            for (k, &c) in chunk.iter().enumerate() {
                let sextet = if k >= 4 - padding { 0 } else { sextet(c)? };
                group = (group << 6) | sextet;
            }
            let [_, b0, b1, b2] = group.to_be_bytes();
            out.push(b0);
            if padding < 2 {
                out.push(b1);
            }
            if padding < 1 {
                out.push(b2);
            }
        }
        Some(out)
    }

    fn sextet(c: u8) -> Option<u32> {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        Some(u32::from(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(expression: &str, input: &Value) -> Result<Value, EvalError> {
        let context = json!({"Execution": {"Name": "exec-7"}});
        parse(expression).unwrap().evaluate(Scope {
            input,
            context: &context,
        })
    }

    #[test]
    fn evaluates_each_function_as_documented() {
        let input = json!({
            "name": "Arnav",
            "template": "Hello, my name is {}.",
            "escapedJsonString": "{\"foo\": \"bar\"}",
            "unescapedJson": {"foo": "bar"},
            "Id": 123456,
            "inputArray": [1, 2, 3, 4, 5, 6, 7, 8, 9],
            "dupes": [1, 2, 2, 3, 3, 3, "a", "a", {"x": 1}, {"x": 1}],
            "index": 5,
            "json1": {"a": {"a1": 1, "a2": 2}, "b": 2},
            "json2": {"a": {"a3": 1, "a4": 2}, "c": 3},
            "value1": 111,
            "step": -1,
            "inputString": "This.is+a,test=string",
            "splitter": ".+,=",
            "csv": "1,,2,3,",
        });
        let cases: &[(&str, Value)] = &[
            ("States.Format('Hello, my name is {}.', $.name)", json!("Hello, my name is Arnav.")),
            ("States.Format($.template, $.name)", json!("Hello, my name is Arnav.")),
            ("States.Format('{} and {}', $.Id, $.unescapedJson)", json!("123456 and {foo=bar}")),
            ("States.Format('{}|{}|{}', $.inputArray, true, null)", json!("[1, 2, 3, 4, 5, 6, 7, 8, 9]|true|null")),
            ("States.Format('no placeholders')", json!("no placeholders")),
            ("States.Format('\\{literal\\} {} it\\'s \\\\', $.name)", json!("{literal} Arnav it's \\")),
            ("States.StringToJson($.escapedJsonString)", json!({"foo": "bar"})),
            ("States.JsonToString($.unescapedJson)", json!("{\"foo\":\"bar\"}")),
            ("States.Array($.Id)", json!([123456])),
            ("States.Array()", json!([])),
            ("States.Array('a', 1, 2.5, -3, true, false, null, $.name)", json!(["a", 1, 2.5, -3, true, false, null, "Arnav"])),
            ("States.ArrayPartition($.inputArray, 4)", json!([[1, 2, 3, 4], [5, 6, 7, 8], [9]])),
            ("States.ArrayContains($.inputArray, 5)", json!(true)),
            ("States.ArrayContains($.inputArray, 10)", json!(false)),
            ("States.ArrayRange(1, 9, 2)", json!([1, 3, 5, 7, 9])),
            ("States.ArrayRange(5, 1, 1)", json!([])),
            ("States.ArrayGetItem($.inputArray, $.index)", json!(6)),
            ("States.ArrayLength($.inputArray)", json!(9)),
            ("States.ArrayUnique($.dupes)", json!([1, 2, 3, "a", {"x": 1}])),
            ("States.Base64Encode('Data to encode')", json!("RGF0YSB0byBlbmNvZGU=")),
            ("States.Base64Encode('ab')", json!("YWI=")),
            ("States.Base64Encode('')", json!("")),
            ("States.Base64Decode('RGVjb2RlZCBkYXRh')", json!("Decoded data")),
            ("States.Base64Decode('YWI=')", json!("ab")),
            ("States.Base64Decode('YQ==')", json!("a")),
            ("States.Hash('abc', 'SHA-256')", json!("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")),
            ("States.Hash('abc', 'SHA-384')", json!("cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7")),
            ("States.Hash('abc', 'SHA-512')", json!("ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f")),
            ("States.JsonMerge($.json1, $.json2, false)", json!({"a": {"a3": 1, "a4": 2}, "b": 2, "c": 3})),
            ("States.MathAdd($.value1, $.step)", json!(110)),
            ("States.MathAdd(1.5, 1)", json!(3)),
            ("States.MathAdd(-2.5, 0)", json!(-2)),
            ("States.MathRandom(7, 7)", json!(7)),
            ("States.StringSplit($.inputString, $.splitter)", json!(["This", "is", "a", "test", "string"])),
            ("States.StringSplit($.csv, ',')", json!(["1", "2", "3"])),
            ("States.Format('{}', States.ArrayGetItem(States.StringSplit('a/b/c', '/'), 2))", json!("c")),
            ("States.Format('{}-{}', $$.Execution.Name, States.ArrayLength($.inputArray))", json!("exec-7-9")),
            ("  States.Array( 1 ,  $.Id )  ", json!([1, 123456])),
        ];
        for (expression, expected) in cases {
            assert_eq!(&eval(expression, &input).unwrap(), expected, "{expression}");
        }
    }

    #[test]
    fn math_random_stays_in_range_and_is_deterministic_with_a_seed() {
        let input = json!({});
        for _ in 0..50 {
            let n = eval("States.MathRandom(1, 3)", &input).unwrap();
            assert!((1..=3).contains(&n.as_i64().unwrap()), "{n}");
        }
        assert_eq!(
            eval("States.MathRandom(1, 1000000, 42)", &input).unwrap(),
            eval("States.MathRandom(1, 1000000, 42)", &input).unwrap()
        );
    }

    #[test]
    fn uuid_is_a_random_version_4_uuid() {
        let input = json!({});
        let a = eval("States.UUID()", &input).unwrap();
        let b = eval("States.UUID()", &input).unwrap();
        assert_ne!(a, b);
        let text = a.as_str().unwrap();
        let groups: Vec<&str> = text.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(text
            .chars()
            .all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(&groups[2][..1], "4");
        assert!(matches!(&groups[3][..1], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn base64_round_trips_arbitrary_text() {
        for text in [
            "",
            "f",
            "fo",
            "foo",
            "foob",
            "fooba",
            "foobar",
            "héllo wörld ✓",
        ] {
            let encoded = base64::encode(text.as_bytes());
            assert_eq!(base64::decode(&encoded).as_deref(), Some(text.as_bytes()));
        }
        for bad in ["a", "ab=c", "a===", "YQ==YQ==", "Y!==", "YQ="] {
            assert_eq!(base64::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn run_time_argument_errors() {
        let input = json!({"arr": [1, 2], "s": "text", "obj": {"a": 1}, "tmpl": "{} {}"});
        let cases = [
            "States.ArrayGetItem($.arr, 2)",
            "States.ArrayGetItem($.arr, -1)",
            "States.ArrayGetItem($.s, 0)",
            "States.ArrayLength($.obj)",
            "States.ArrayPartition($.arr, 0)",
            "States.ArrayRange(1, 5000, 1)",
            "States.ArrayRange(1, 5, 0)",
            "States.StringToJson('not json')",
            "States.StringToJson($.arr)",
            "States.Base64Decode('@@@@')",
            "States.Hash('abc', 'SHA-1')",
            "States.Hash('abc', 'CRC32')",
            "States.JsonMerge($.obj, $.obj, true)",
            "States.JsonMerge($.obj, $.arr, false)",
            "States.MathAdd($.s, 1)",
            "States.MathAdd(9223372036854775807, 1)",
            "States.MathRandom(5, 1)",
            "States.Format($.tmpl, 1)",
            "States.Format($.missing)",
            "States.Array($.missing)",
        ];
        for expression in cases {
            assert!(
                eval(expression, &input).is_err(),
                "{expression} should fail at run time"
            );
        }
        let long = "x".repeat(MAX_INPUT_CHARS + 1);
        assert!(eval(&format!("States.Base64Encode('{long}')"), &input).is_err());
        let message = eval("States.ArrayGetItem($.arr, 2)", &input).unwrap_err().0;
        assert!(
            message.starts_with("Invalid arguments in States.ArrayGetItem"),
            "{message}"
        );
    }

    #[test]
    fn rejects_malformed_calls_when_parsing() {
        let cases = [
            "States.Nope()",
            "Format('x')",
            "States.Format",
            "States.Format('{}')",
            "States.Format('{} {}', 1)",
            "States.Format(1)",
            "States.Format('a {')",
            "States.Format('a }')",
            "States.Format('bad \\n escape')",
            "States.Format('unterminated)",
            "States.Array(1,)",
            "States.Array(1 2)",
            "States.Array(yes)",
            "States.Array(1) trailing",
            "States.Array($.a[*])",
            "States.Array(01)",
            "States.UUID(1)",
            "States.MathAdd(1)",
            "States.MathRandom(1, 2, 3, 4)",
            "States.JsonMerge($.a, $.b)",
        ];
        for expression in cases {
            assert!(parse(expression).is_err(), "{expression} should not parse");
        }
        let deep = format!("{}1{}", "States.Array(".repeat(11), ")".repeat(11));
        assert!(parse(&deep).is_err());
        let allowed = format!("{}1{}", "States.Array(".repeat(10), ")".repeat(10));
        assert!(parse(&allowed).is_ok());
    }

    #[test]
    fn paths_inside_arguments_may_contain_commas_and_parentheses_in_brackets() {
        let input = json!({"a,b": {"c)": "found"}});
        assert_eq!(
            eval("States.Array($['a,b']['c)'], 'x')", &input).unwrap(),
            json!(["found", "x"])
        );
    }
}
