//! Typed, located access to the fields of a definition object, so every validation error
//! says where in the definition it is (e.g. `States.Build.Retry[0].MaxAttempts`).

use serde_json::{Map, Value};

use crate::error::DefinitionError;
use crate::path::JsonPath;

/// Fields Step Functions accepts that this interpreter does not implement; naming them in
/// the error is clearer than calling them unknown.
const UNSUPPORTED_FIELDS: &[&str] = &[
    "HeartbeatSeconds",
    "HeartbeatSecondsPath",
    "Credentials",
    "Assign",
    "Output",
    "Arguments",
    "Condition",
];

pub(crate) struct Fields<'a> {
    location: String,
    map: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(
        value: &'a Value,
        location: impl Into<String>,
    ) -> Result<Self, DefinitionError> {
        let location = location.into();
        match value.as_object() {
            Some(map) => Ok(Self { location, map }),
            None => Err(DefinitionError::Invalid {
                location,
                message: "must be a JSON object".to_owned(),
            }),
        }
    }

    pub(crate) fn location(&self) -> &str {
        &self.location
    }

    /// The location of one of this object's fields.
    pub(crate) fn at(&self, key: &str) -> String {
        if self.location.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.location)
        }
    }

    pub(crate) fn invalid(&self, key: &str, message: impl Into<String>) -> DefinitionError {
        DefinitionError::Invalid {
            location: self.at(key),
            message: message.into(),
        }
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &'a str> {
        self.map.keys().map(String::as_str)
    }

    /// Rejects every field not in `allowed`.
    pub(crate) fn allow_only(&self, allowed: &[&str]) -> Result<(), DefinitionError> {
        match self.keys().find(|key| !allowed.contains(key)) {
            None => Ok(()),
            Some(key) if UNSUPPORTED_FIELDS.contains(&key) => Err(DefinitionError::Unsupported {
                location: self.at(key),
                feature: format!("the field '{key}'"),
            }),
            Some(key) => Err(DefinitionError::Invalid {
                location: self.location.clone(),
                message: format!("unknown field '{key}'"),
            }),
        }
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    pub(crate) fn raw(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key)
    }

    pub(crate) fn string(&self, key: &str) -> Result<Option<&'a str>, DefinitionError> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(_) => Err(self.invalid(key, "must be a string")),
        }
    }

    pub(crate) fn required_string(&self, key: &str) -> Result<&'a str, DefinitionError> {
        self.string(key)?
            .ok_or_else(|| self.invalid(key, "is required"))
    }

    /// A JSON integer within `min..=max`.
    pub(crate) fn integer(
        &self,
        key: &str,
        min: u64,
        max: u64,
    ) -> Result<Option<u64>, DefinitionError> {
        match self.map.get(key) {
            None => Ok(None),
            Some(value) => value
                .as_u64()
                .filter(|n| (min..=max).contains(n))
                .map(Some)
                .ok_or_else(|| {
                    self.invalid(key, format!("must be an integer from {min} to {max}"))
                }),
        }
    }

    pub(crate) fn number(&self, key: &str) -> Result<Option<f64>, DefinitionError> {
        match self.map.get(key) {
            None => Ok(None),
            Some(value) => value
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.invalid(key, "must be a number")),
        }
    }

    pub(crate) fn boolean(&self, key: &str) -> Result<Option<bool>, DefinitionError> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Value::Bool(flag)) => Ok(Some(*flag)),
            Some(_) => Err(self.invalid(key, "must be a boolean")),
        }
    }

    pub(crate) fn array(&self, key: &str) -> Result<Option<&'a Vec<Value>>, DefinitionError> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(_) => Err(self.invalid(key, "must be an array")),
        }
    }

    pub(crate) fn path(&self, key: &str) -> Result<Option<JsonPath>, DefinitionError> {
        self.string(key)?
            .map(|text| JsonPath::parse(text).map_err(|error| self.invalid(key, error.to_string())))
            .transpose()
    }

    /// A path that may also be `null`: `None` when absent, `Some(None)` when null.
    pub(crate) fn nullable_path(
        &self,
        key: &str,
    ) -> Result<Option<Option<JsonPath>>, DefinitionError> {
        match self.map.get(key) {
            Some(Value::Null) => Ok(Some(None)),
            _ => Ok(self.path(key)?.map(Some)),
        }
    }
}
