//! Parsing and validating a state machine definition into the typed model the executor runs.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;

use crate::choice::Branch;
use crate::error::{names, DefinitionError};
use crate::fields::Fields;
use crate::intrinsics::{self, Intrinsic};
use crate::path::{JsonPath, Root};
use crate::substitution::substitute;
use crate::template::Template;
use crate::timestamp;

/// Step Functions' upper bound for most second counts in a definition.
const MAX_SECONDS: u64 = 99_999_999;
/// Step Functions' bound for a Retrier's `MaxDelaySeconds` (one year).
const MAX_DELAY_SECONDS: u64 = 31_622_400;
const MAX_STATE_NAME_CHARS: usize = 80;

/// A parsed, validated state machine definition.
#[derive(Debug, Clone)]
pub struct StateMachine {
    start_at: String,
    states: BTreeMap<String, State>,
    timeout: Option<Duration>,
}

#[derive(Debug, Clone)]
pub(crate) enum State {
    Task(Box<TaskState>),
    Pass(PassState),
    Choice(ChoiceState),
    Wait(WaitState),
    Succeed(SucceedState),
    Fail(FailState),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Transition {
    Next(String),
    End,
}

/// An `InputPath`, `OutputPath` or `ResultPath`: `None` when the definition says `null`.
pub(crate) type OptionalPath = Option<JsonPath>;

#[derive(Debug, Clone)]
pub(crate) struct TaskState {
    pub(crate) resource: String,
    pub(crate) input_path: OptionalPath,
    pub(crate) parameters: Option<Template>,
    pub(crate) result_selector: Option<Template>,
    pub(crate) result_path: OptionalPath,
    pub(crate) output_path: OptionalPath,
    pub(crate) timeout: Option<TaskTimeout>,
    pub(crate) retriers: Vec<Retrier>,
    pub(crate) catchers: Vec<Catcher>,
    pub(crate) transition: Transition,
}

#[derive(Debug, Clone)]
pub(crate) enum TaskTimeout {
    Seconds(u64),
    Path(JsonPath),
}

#[derive(Debug, Clone)]
pub(crate) struct Retrier {
    pub(crate) error_equals: Vec<String>,
    pub(crate) interval_seconds: u64,
    pub(crate) max_attempts: u64,
    pub(crate) backoff_rate: f64,
    pub(crate) max_delay_seconds: Option<u64>,
    pub(crate) jitter: Jitter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Jitter {
    None,
    Full,
}

#[derive(Debug, Clone)]
pub(crate) struct Catcher {
    pub(crate) error_equals: Vec<String>,
    pub(crate) next: String,
    pub(crate) result_path: OptionalPath,
}

#[derive(Debug, Clone)]
pub(crate) struct PassState {
    pub(crate) input_path: OptionalPath,
    pub(crate) parameters: Option<Template>,
    pub(crate) result: Option<Value>,
    pub(crate) result_path: OptionalPath,
    pub(crate) output_path: OptionalPath,
    pub(crate) transition: Transition,
}

#[derive(Debug, Clone)]
pub(crate) struct ChoiceState {
    pub(crate) input_path: OptionalPath,
    pub(crate) output_path: OptionalPath,
    pub(crate) branches: Vec<Branch>,
    pub(crate) default: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct WaitState {
    pub(crate) input_path: OptionalPath,
    pub(crate) output_path: OptionalPath,
    pub(crate) wait: WaitFor,
    pub(crate) transition: Transition,
}

#[derive(Debug, Clone)]
pub(crate) enum WaitFor {
    Seconds(u64),
    SecondsPath(JsonPath),
    Timestamp(OffsetDateTime),
    TimestampPath(JsonPath),
}

#[derive(Debug, Clone)]
pub(crate) struct SucceedState {
    pub(crate) input_path: OptionalPath,
    pub(crate) output_path: OptionalPath,
}

#[derive(Debug, Clone)]
pub(crate) struct FailState {
    pub(crate) error: Option<FailField>,
    pub(crate) cause: Option<FailField>,
}

/// A Fail state's error or cause: fixed, or computed from the input.
#[derive(Debug, Clone)]
pub(crate) enum FailField {
    Literal(String),
    Path(JsonPath),
    Intrinsic(Intrinsic),
}

/// A transition found while parsing: where it is written, and the state it names.
struct Edge {
    from: String,
    location: String,
    target: String,
}

impl StateMachine {
    /// Parses and validates an ASL definition (JSONPath query language).
    pub fn parse(definition: &str) -> Result<Self, DefinitionError> {
        let json: Value = serde_json::from_str(definition)?;
        Self::from_json(&json)
    }

    /// Replaces every `${Name}` placeholder with its value from `substitutions`, as
    /// CloudFormation's `DefinitionSubstitutions` does, then parses the result.
    pub fn parse_with_substitutions(
        definition: &str,
        substitutions: &BTreeMap<String, String>,
    ) -> Result<Self, DefinitionError> {
        Self::parse(&substitute(definition, substitutions)?)
    }

    /// The name of the first state.
    pub fn start_at(&self) -> &str {
        &self.start_at
    }

    /// The names of all states.
    pub fn state_names(&self) -> impl Iterator<Item = &str> {
        self.states.keys().map(String::as_str)
    }

    /// Every distinct Task `Resource`, so a caller can check it can run each one before
    /// starting an execution.
    pub fn task_resources(&self) -> BTreeSet<&str> {
        self.states
            .values()
            .filter_map(|state| match state {
                State::Task(task) => Some(task.resource.as_str()),
                _ => None,
            })
            .collect()
    }

    pub(crate) fn state(&self, name: &str) -> Option<&State> {
        self.states.get(name)
    }

    pub(crate) fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    fn from_json(json: &Value) -> Result<Self, DefinitionError> {
        if !json.is_object() {
            return Err(DefinitionError::Invalid {
                location: "definition".to_owned(),
                message: "must be a JSON object".to_owned(),
            });
        }
        let top = Fields::new(json, "")?;
        top.allow_only(&[
            "Comment",
            "StartAt",
            "States",
            "Version",
            "TimeoutSeconds",
            "QueryLanguage",
        ])?;
        check_query_language(&top)?;
        if let Some(version) = top.string("Version")? {
            if version != "1.0" {
                return Err(top.invalid("Version", "the only supported version is \"1.0\""));
            }
        }
        let timeout = top
            .integer("TimeoutSeconds", 1, MAX_SECONDS)?
            .map(Duration::from_secs);
        let start_at = top.required_string("StartAt")?.to_owned();
        let states_json = top
            .raw("States")
            .ok_or_else(|| top.invalid("States", "is required"))?;
        let states_fields = Fields::new(states_json, "States")?;
        let mut states = BTreeMap::new();
        let mut edges = Vec::new();
        for name in states_fields.keys() {
            let location = states_fields.at(name);
            let count = name.chars().count();
            if count == 0 || count > MAX_STATE_NAME_CHARS {
                return Err(DefinitionError::Invalid {
                    location,
                    message: format!(
                        "state names must be 1 to {MAX_STATE_NAME_CHARS} characters long"
                    ),
                });
            }
            let value = states_fields.raw(name).unwrap_or(&Value::Null);
            let mut state_edges = Vec::new();
            let state = parse_state(value, location, &mut state_edges)?;
            edges.extend(state_edges.into_iter().map(|(location, target)| Edge {
                from: name.to_owned(),
                location,
                target,
            }));
            states.insert(name.to_owned(), state);
        }
        if states.is_empty() {
            return Err(top.invalid("States", "must contain at least one state"));
        }
        if !states.contains_key(&start_at) {
            return Err(DefinitionError::UnknownState {
                location: "StartAt".to_owned(),
                target: start_at,
            });
        }
        if let Some(edge) = edges.iter().find(|edge| !states.contains_key(&edge.target)) {
            return Err(DefinitionError::UnknownState {
                location: edge.location.clone(),
                target: edge.target.clone(),
            });
        }
        check_reachability(&start_at, &states, &edges)?;
        Ok(Self {
            start_at,
            states,
            timeout,
        })
    }
}

/// Step Functions rejects definitions with states that no transition leads to.
fn check_reachability(
    start_at: &str,
    states: &BTreeMap<String, State>,
    edges: &[Edge],
) -> Result<(), DefinitionError> {
    let mut reached = BTreeSet::from([start_at]);
    let mut queue = VecDeque::from([start_at]);
    while let Some(current) = queue.pop_front() {
        for edge in edges.iter().filter(|edge| edge.from == current) {
            if reached.insert(edge.target.as_str()) {
                queue.push_back(edge.target.as_str());
            }
        }
    }
    match states.keys().find(|name| !reached.contains(name.as_str())) {
        None => Ok(()),
        Some(name) => Err(DefinitionError::Invalid {
            location: format!("States.{name}"),
            message: "no transition leads to this state from StartAt".to_owned(),
        }),
    }
}

fn check_query_language(fields: &Fields<'_>) -> Result<(), DefinitionError> {
    match fields.string("QueryLanguage")? {
        None | Some("JSONPath") => Ok(()),
        Some("JSONata") => Err(DefinitionError::Unsupported {
            location: fields.at("QueryLanguage"),
            feature: "the JSONata query language".to_owned(),
        }),
        Some(_) => Err(fields.invalid("QueryLanguage", "must be \"JSONPath\" or \"JSONata\"")),
    }
}

const IO_FIELDS: &[&str] = &[
    "Type",
    "Comment",
    "QueryLanguage",
    "InputPath",
    "OutputPath",
];

fn allow(fields: &Fields<'_>, specific: &[&str]) -> Result<(), DefinitionError> {
    let allowed: Vec<&str> = IO_FIELDS.iter().chain(specific).copied().collect();
    fields.allow_only(&allowed)
}

fn parse_state(
    value: &Value,
    location: String,
    edges: &mut Vec<(String, String)>,
) -> Result<State, DefinitionError> {
    let fields = Fields::new(value, location)?;
    let kind = fields.required_string("Type")?;
    check_query_language(&fields)?;
    match kind {
        "Task" => {
            allow(
                &fields,
                &[
                    "Resource",
                    "Next",
                    "End",
                    "Parameters",
                    "ResultSelector",
                    "ResultPath",
                    "Retry",
                    "Catch",
                    "TimeoutSeconds",
                    "TimeoutSecondsPath",
                ],
            )?;
            let resource = fields.required_string("Resource")?;
            if resource.is_empty() {
                return Err(fields.invalid("Resource", "must not be empty"));
            }
            if resource.ends_with(".waitForTaskToken") {
                // Callbacks need a task token, which the invoker port does not carry.
                return Err(DefinitionError::Unsupported {
                    location: fields.at("Resource"),
                    feature: "the .waitForTaskToken integration pattern".to_owned(),
                });
            }
            let timeout = match (
                fields.integer("TimeoutSeconds", 1, MAX_SECONDS)?,
                fields.path("TimeoutSecondsPath")?,
            ) {
                (Some(_), Some(_)) => {
                    return Err(fields.invalid(
                        "TimeoutSecondsPath",
                        "TimeoutSeconds and TimeoutSecondsPath are mutually exclusive",
                    ))
                }
                (Some(seconds), None) => Some(TaskTimeout::Seconds(seconds)),
                (None, Some(path)) => Some(TaskTimeout::Path(path)),
                (None, None) => None,
            };
            Ok(State::Task(Box::new(TaskState {
                resource: resource.to_owned(),
                input_path: selection_path(&fields, "InputPath")?,
                parameters: template(&fields, "Parameters")?,
                result_selector: template(&fields, "ResultSelector")?,
                result_path: result_path(&fields, "ResultPath")?,
                output_path: selection_path(&fields, "OutputPath")?,
                timeout,
                retriers: retriers(&fields)?,
                catchers: catchers(&fields, edges)?,
                transition: transition(&fields, edges)?,
            })))
        }
        "Pass" => {
            allow(
                &fields,
                &["Next", "End", "Parameters", "Result", "ResultPath"],
            )?;
            Ok(State::Pass(PassState {
                input_path: selection_path(&fields, "InputPath")?,
                parameters: template(&fields, "Parameters")?,
                result: fields.raw("Result").cloned(),
                result_path: result_path(&fields, "ResultPath")?,
                output_path: selection_path(&fields, "OutputPath")?,
                transition: transition(&fields, edges)?,
            }))
        }
        "Choice" => {
            allow(&fields, &["Choices", "Default"])?;
            let rules = fields
                .array("Choices")?
                .filter(|rules| !rules.is_empty())
                .ok_or_else(|| {
                    fields.invalid("Choices", "must be a non-empty array of Choice Rules")
                })?;
            let mut branches = Vec::with_capacity(rules.len());
            for (i, rule) in rules.iter().enumerate() {
                let location = format!("{}[{i}]", fields.at("Choices"));
                let branch = Branch::parse(rule, location.clone())?;
                edges.push((format!("{location}.Next"), branch.next.clone()));
                branches.push(branch);
            }
            let default = fields.string("Default")?.map(str::to_owned);
            if let Some(default) = &default {
                edges.push((fields.at("Default"), default.clone()));
            }
            Ok(State::Choice(ChoiceState {
                input_path: selection_path(&fields, "InputPath")?,
                output_path: selection_path(&fields, "OutputPath")?,
                branches,
                default,
            }))
        }
        "Wait" => {
            allow(
                &fields,
                &[
                    "Next",
                    "End",
                    "Seconds",
                    "SecondsPath",
                    "Timestamp",
                    "TimestampPath",
                ],
            )?;
            let given: Vec<&str> = ["Seconds", "SecondsPath", "Timestamp", "TimestampPath"]
                .into_iter()
                .filter(|key| fields.has(key))
                .collect();
            let wait = match given.as_slice() {
                ["Seconds"] => WaitFor::Seconds(fields.integer("Seconds", 0, MAX_SECONDS)?.unwrap_or(0)),
                ["SecondsPath"] => WaitFor::SecondsPath(required_path(&fields, "SecondsPath")?),
                ["Timestamp"] => WaitFor::Timestamp(
                    fields
                        .string("Timestamp")?
                        .and_then(timestamp::parse)
                        .ok_or_else(|| {
                            fields.invalid("Timestamp", "must be an RFC 3339 timestamp such as 2016-08-18T17:33:00Z")
                        })?,
                ),
                ["TimestampPath"] => WaitFor::TimestampPath(required_path(&fields, "TimestampPath")?),
                _ => {
                    return Err(DefinitionError::Invalid {
                        location: fields.location().to_owned(),
                        message: "a Wait state needs exactly one of Seconds, SecondsPath, Timestamp or TimestampPath"
                            .to_owned(),
                    })
                }
            };
            Ok(State::Wait(WaitState {
                input_path: selection_path(&fields, "InputPath")?,
                output_path: selection_path(&fields, "OutputPath")?,
                wait,
                transition: transition(&fields, edges)?,
            }))
        }
        "Succeed" => {
            allow(&fields, &[])?;
            Ok(State::Succeed(SucceedState {
                input_path: selection_path(&fields, "InputPath")?,
                output_path: selection_path(&fields, "OutputPath")?,
            }))
        }
        "Fail" => {
            fields.allow_only(&[
                "Type",
                "Comment",
                "QueryLanguage",
                "Error",
                "ErrorPath",
                "Cause",
                "CausePath",
            ])?;
            Ok(State::Fail(FailState {
                error: fail_field(&fields, "Error")?,
                cause: fail_field(&fields, "Cause")?,
            }))
        }
        "Parallel" | "Map" => Err(DefinitionError::Unsupported {
            location: fields.at("Type"),
            feature: format!("the {kind} state type"),
        }),
        other => Err(fields.invalid(
            "Type",
            format!(
                "unknown state type '{other}' (expected Task, Pass, Choice, Wait, Succeed or Fail)"
            ),
        )),
    }
}

fn required_path(fields: &Fields<'_>, key: &str) -> Result<JsonPath, DefinitionError> {
    fields
        .path(key)?
        .ok_or_else(|| fields.invalid(key, "must be a path"))
}

/// `InputPath`/`OutputPath`: default `$`, `null` allowed.
fn selection_path(fields: &Fields<'_>, key: &str) -> Result<OptionalPath, DefinitionError> {
    Ok(fields
        .nullable_path(key)?
        .unwrap_or_else(|| Some(JsonPath::input_root())))
}

/// A `ResultPath`: like [`selection_path`], but it must address the input, which it writes to.
fn result_path(fields: &Fields<'_>, key: &str) -> Result<OptionalPath, DefinitionError> {
    let path = selection_path(fields, key)?;
    if path
        .as_ref()
        .is_some_and(|path| path.root() == Root::Context)
    {
        return Err(fields.invalid(
            key,
            "must be a path into the state's input ($), not the context object",
        ));
    }
    Ok(path)
}

fn template(fields: &Fields<'_>, key: &str) -> Result<Option<Template>, DefinitionError> {
    fields
        .raw(key)
        .map(|value| Template::compile(value, &fields.at(key)))
        .transpose()
}

fn transition(
    fields: &Fields<'_>,
    edges: &mut Vec<(String, String)>,
) -> Result<Transition, DefinitionError> {
    match (fields.string("Next")?, fields.boolean("End")?) {
        (Some(_), Some(_)) => Err(fields.invalid("End", "a state may not have both Next and End")),
        (Some(next), None) => {
            edges.push((fields.at("Next"), next.to_owned()));
            Ok(Transition::Next(next.to_owned()))
        }
        (None, Some(true)) => Ok(Transition::End),
        (None, Some(false)) => Err(fields.invalid("End", "must be true when present")),
        (None, None) => Err(DefinitionError::Invalid {
            location: fields.location().to_owned(),
            message: "a non-terminal state needs either Next or \"End\": true".to_owned(),
        }),
    }
}

fn fail_field(fields: &Fields<'_>, key: &str) -> Result<Option<FailField>, DefinitionError> {
    let path_key = format!("{key}Path");
    match (fields.string(key)?, fields.string(&path_key)?) {
        (Some(_), Some(_)) => Err(fields.invalid(
            &path_key,
            format!("{key} and {path_key} are mutually exclusive"),
        )),
        (Some(text), None) => Ok(Some(FailField::Literal(text.to_owned()))),
        (None, Some(expression)) if expression.starts_with('$') => JsonPath::parse(expression)
            .map(|path| Some(FailField::Path(path)))
            .map_err(|error| fields.invalid(&path_key, error.to_string())),
        (None, Some(expression)) if expression.starts_with("States.") => {
            intrinsics::parse(expression)
                .map(|call| Some(FailField::Intrinsic(call)))
                .map_err(|error| fields.invalid(&path_key, error.to_string()))
        }
        (None, Some(_)) => {
            Err(fields.invalid(&path_key, "must be a path or an intrinsic function"))
        }
        (None, None) => Ok(None),
    }
}

fn error_equals(
    fields: &Fields<'_>,
    is_last: bool,
    role: &str,
) -> Result<Vec<String>, DefinitionError> {
    let items = fields
        .array("ErrorEquals")?
        .filter(|items| !items.is_empty())
        .ok_or_else(|| fields.invalid("ErrorEquals", "must be a non-empty array of error names"))?;
    let mut error_names = Vec::with_capacity(items.len());
    for item in items {
        let name = item
            .as_str()
            .ok_or_else(|| fields.invalid("ErrorEquals", "must contain only strings"))?;
        if name.starts_with("States.") && !names::KNOWN.contains(&name) {
            return Err(fields.invalid(
                "ErrorEquals",
                format!("'{name}' is not a predefined error name"),
            ));
        }
        error_names.push(name.to_owned());
    }
    if error_names.iter().any(|name| name == names::ALL) {
        if error_names.len() > 1 {
            return Err(
                fields.invalid("ErrorEquals", "States.ALL must appear alone in ErrorEquals")
            );
        }
        if !is_last {
            return Err(fields.invalid(
                "ErrorEquals",
                format!("a {role} matching States.ALL must be the last one"),
            ));
        }
    }
    Ok(error_names)
}

fn objects<'a>(fields: &Fields<'a>, key: &str) -> Result<Vec<Fields<'a>>, DefinitionError> {
    let items = fields.array(key)?.map(Vec::as_slice).unwrap_or_default();
    items
        .iter()
        .enumerate()
        .map(|(i, item)| Fields::new(item, format!("{}[{i}]", fields.at(key))))
        .collect()
}

fn retriers(fields: &Fields<'_>) -> Result<Vec<Retrier>, DefinitionError> {
    let entries = objects(fields, "Retry")?;
    let count = entries.len();
    entries
        .iter()
        .enumerate()
        .map(|(i, retrier)| {
            retrier.allow_only(&[
                "ErrorEquals",
                "IntervalSeconds",
                "MaxAttempts",
                "BackoffRate",
                "MaxDelaySeconds",
                "JitterStrategy",
                "Comment",
            ])?;
            let backoff_rate = retrier.number("BackoffRate")?.unwrap_or(2.0);
            if backoff_rate < 1.0 {
                return Err(retrier.invalid("BackoffRate", "must be at least 1.0"));
            }
            let jitter = match retrier.string("JitterStrategy")? {
                None | Some("NONE") => Jitter::None,
                Some("FULL") => Jitter::Full,
                Some(_) => {
                    return Err(retrier.invalid("JitterStrategy", "must be \"FULL\" or \"NONE\""))
                }
            };
            Ok(Retrier {
                error_equals: error_equals(retrier, i + 1 == count, "Retrier")?,
                interval_seconds: retrier
                    .integer("IntervalSeconds", 1, MAX_SECONDS)?
                    .unwrap_or(1),
                max_attempts: retrier.integer("MaxAttempts", 0, MAX_SECONDS)?.unwrap_or(3),
                backoff_rate,
                max_delay_seconds: retrier.integer("MaxDelaySeconds", 1, MAX_DELAY_SECONDS)?,
                jitter,
            })
        })
        .collect()
}

fn catchers(
    fields: &Fields<'_>,
    edges: &mut Vec<(String, String)>,
) -> Result<Vec<Catcher>, DefinitionError> {
    let entries = objects(fields, "Catch")?;
    let count = entries.len();
    entries
        .iter()
        .enumerate()
        .map(|(i, catcher)| {
            catcher.allow_only(&["ErrorEquals", "Next", "ResultPath", "Comment"])?;
            let next = catcher.required_string("Next")?.to_owned();
            edges.push((catcher.at("Next"), next.clone()));
            Ok(Catcher {
                error_equals: error_equals(catcher, i + 1 == count, "Catcher")?,
                next,
                result_path: result_path(catcher, "ResultPath")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(definition: Value) -> Result<StateMachine, DefinitionError> {
        StateMachine::parse(&definition.to_string())
    }

    fn machine_with(state: Value) -> Value {
        json!({
            "StartAt": "S",
            "States": {
                "S": state,
                "Done": {"Type": "Succeed"},
                "Recover": {"Type": "Pass", "End": true}
            }
        })
    }

    #[test]
    fn accepts_a_definition_using_every_supported_feature() {
        let definition = json!({
            "Comment": "everything",
            "Version": "1.0",
            "TimeoutSeconds": 3600,
            "QueryLanguage": "JSONPath",
            "StartAt": "Prepare",
            "States": {
                "Prepare": {
                    "Type": "Pass", "Comment": "c", "InputPath": "$.in", "Parameters": {"a.$": "$.a"},
                    "Result": {"r": 1}, "ResultPath": "$.r", "OutputPath": null, "Next": "Build"
                },
                "Build": {
                    "Type": "Task", "Resource": "arn:aws:states:::codebuild:startBuild.sync",
                    "InputPath": null, "Parameters": {"ProjectName": "p", "Env.$": "$$.Execution.Input"},
                    "ResultSelector": {"id.$": "$.Build.Id"}, "ResultPath": null, "OutputPath": "$",
                    "TimeoutSeconds": 900,
                    "Retry": [
                        {"ErrorEquals": ["StoreUnavailable"], "IntervalSeconds": 2, "MaxAttempts": 0,
                         "BackoffRate": 1.5, "MaxDelaySeconds": 60, "JitterStrategy": "FULL", "Comment": "c"},
                        {"ErrorEquals": ["States.TaskFailed", "States.Timeout"]},
                        {"ErrorEquals": ["States.ALL"]}
                    ],
                    "Catch": [
                        {"ErrorEquals": ["States.Timeout"], "ResultPath": "$.error", "Next": "Failed"},
                        {"ErrorEquals": ["States.ALL"], "ResultPath": null, "Next": "Decide"}
                    ],
                    "Next": "Decide"
                },
                "Decide": {
                    "Type": "Choice",
                    "Choices": [
                        {"Variable": "$.ok", "BooleanEquals": true, "Next": "Pause"},
                        {"And": [{"Variable": "$.n", "IsNumeric": true}, {"Not": {"Variable": "$.n", "NumericLessThan": 0}}],
                         "Next": "Stop", "Comment": "c"}
                    ],
                    "Default": "Failed"
                },
                "Pause": {"Type": "Wait", "SecondsPath": "$.delay", "Next": "Until"},
                "Until": {"Type": "Wait", "Timestamp": "2030-01-01T00:00:00Z", "End": true},
                "Stop": {"Type": "Succeed", "InputPath": "$.x", "OutputPath": "$.y"},
                "Failed": {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "States.Format('{}', $.error.Cause)"}
            }
        });
        let machine = parse(definition).unwrap();
        assert_eq!(machine.start_at(), "Prepare");
        assert_eq!(machine.timeout(), Some(Duration::from_secs(3600)));
        assert_eq!(
            machine.task_resources(),
            BTreeSet::from(["arn:aws:states:::codebuild:startBuild.sync"])
        );
        assert_eq!(machine.state_names().count(), 7);
        let Some(State::Task(build)) = machine.state("Build") else {
            panic!("Build is a Task");
        };
        assert_eq!(build.retriers.len(), 3);
        assert_eq!(build.retriers[0].max_attempts, 0);
        assert_eq!(build.retriers[0].jitter, Jitter::Full);
        assert_eq!(build.retriers[1].interval_seconds, 1);
        assert_eq!(build.retriers[1].max_attempts, 3);
        assert_eq!(build.retriers[1].backoff_rate, 2.0);
        assert_eq!(build.retriers[1].max_delay_seconds, None);
        assert_eq!(build.retriers[1].jitter, Jitter::None);
        assert!(build.input_path.is_none());
        assert!(build.result_path.is_none());
        assert!(build.catchers[1].result_path.is_none());
        assert_eq!(
            build.catchers[0]
                .result_path
                .as_ref()
                .map(ToString::to_string),
            Some("$.error".to_owned())
        );
    }

    #[test]
    fn substitutions_fill_placeholders_before_parsing() {
        let definition = r#"{"StartAt": "S", "States": {"S": {"Type": "Task", "Resource": "${BuildFunction}", "End": true}}}"#;
        let substitutions = BTreeMap::from([(
            "BuildFunction".to_owned(),
            "arn:aws:lambda:us-east-1:1:function:build".to_owned(),
        )]);
        let machine = StateMachine::parse_with_substitutions(definition, &substitutions).unwrap();
        assert_eq!(
            machine.task_resources(),
            BTreeSet::from(["arn:aws:lambda:us-east-1:1:function:build"])
        );
        assert!(matches!(
            StateMachine::parse_with_substitutions(definition, &BTreeMap::new()),
            Err(DefinitionError::UnknownPlaceholder(name)) if name == "BuildFunction"
        ));
    }

    #[test]
    fn rejects_invalid_definitions_with_the_location_of_the_problem() {
        let task = |extra: Value| {
            let mut state = json!({"Type": "Task", "Resource": "arn:r", "Next": "Done"});
            if let (Some(state), Some(extra)) = (state.as_object_mut(), extra.as_object()) {
                for (k, v) in extra {
                    if v.is_null() && k == "Next" {
                        state.remove(k);
                    } else {
                        state.insert(k.clone(), v.clone());
                    }
                }
            }
            machine_with(state)
        };
        let cases: Vec<(Value, &str)> = vec![
            (json!([]), "definition"),
            (json!({"States": {"S": {"Type": "Succeed"}}}), "StartAt"),
            (json!({"StartAt": "S"}), "States"),
            (json!({"StartAt": "S", "States": {}}), "States"),
            (
                json!({"StartAt": "Missing", "States": {"S": {"Type": "Succeed"}}}),
                "StartAt",
            ),
            (
                json!({"StartAt": "S", "States": {"S": {"Type": "Succeed"}}, "Version": "2.0"}),
                "Version",
            ),
            (
                json!({"StartAt": "S", "States": {"S": {"Type": "Succeed"}}, "Extra": 1}),
                "",
            ),
            (
                json!({"StartAt": "S", "States": {"S": {"Type": "Succeed"}}, "TimeoutSeconds": 0}),
                "TimeoutSeconds",
            ),
            (
                json!({"StartAt": "S", "States": {"S": {"Type": "Succeed"}, "Orphan": {"Type": "Succeed"}}}),
                "States.Orphan",
            ),
            (
                json!({"StartAt": "S", "States": {"S": {"Type": "Pass", "Next": "Nowhere"}}}),
                "States.S.Next",
            ),
            (
                json!({"StartAt": "S", "States": {"S": {"Type": "Pass"}}}),
                "States.S",
            ),
            (
                json!({"StartAt": "S", "States": {"S": {"Type": "Pass", "End": false}}}),
                "States.S.End",
            ),
            (
                json!({"StartAt": "S", "States": {"S": {"Type": "Pass", "End": true, "Next": "S"}}}),
                "States.S.End",
            ),
            (
                json!({"StartAt": "S", "States": {"S": {"Type": "Sleep", "End": true}}}),
                "States.S.Type",
            ),
            (
                json!({"StartAt": "S", "States": {"S": {"End": true}}}),
                "States.S.Type",
            ),
            (
                json!({"StartAt": "S", "States": {"S": {"Type": "Succeed", "Next": "S"}}}),
                "States.S",
            ),
            (
                json!({"StartAt": "S", "States": {"S": {"Type": "Fail", "InputPath": "$"}}}),
                "States.S",
            ),
            (
                json!({"StartAt": "S", "States": {"S": {"Type": "Fail", "Error": "E", "ErrorPath": "$.e"}}}),
                "States.S.ErrorPath",
            ),
            (
                json!({"StartAt": "S", "States": {"S": {"Type": "Fail", "CausePath": "cause"}}}),
                "States.S.CausePath",
            ),
            (
                json!({"StartAt": "S", "States": {"S": {"Type": "Choice", "Choices": []}}}),
                "States.S.Choices",
            ),
            (
                json!({"StartAt": "S", "States": {"S": {"Type": "Choice", "Choices": [{"Variable": "$.a", "IsNull": true}]}}}),
                "States.S.Choices[0].Next",
            ),
            (
                json!({"StartAt": "S", "States": {"S": {"Type": "Choice", "Choices": [{"Variable": "$.a", "IsNull": true, "Next": "X"}]}}}),
                "States.S.Choices[0].Next",
            ),
            (
                json!({"StartAt": "S", "States": {"S": {"Type": "Choice", "Default": "X", "Choices": [{"Variable": "$.a", "IsNull": true, "Next": "S"}]}}}),
                "States.S.Default",
            ),
            (
                json!({"StartAt": "S", "States": {"S": {"Type": "Choice", "End": true, "Choices": [{"Variable": "$.a", "IsNull": true, "Next": "S"}]}}}),
                "States.S",
            ),
            (
                json!({"StartAt": "S", "States": {"S": {"Type": "Wait", "End": true}}}),
                "States.S",
            ),
            (
                json!({"StartAt": "S", "States": {"S": {"Type": "Wait", "Seconds": 1, "Timestamp": "2030-01-01T00:00:00Z", "End": true}}}),
                "States.S",
            ),
            (
                json!({"StartAt": "S", "States": {"S": {"Type": "Wait", "Seconds": -1, "End": true}}}),
                "States.S.Seconds",
            ),
            (
                json!({"StartAt": "S", "States": {"S": {"Type": "Wait", "Seconds": 1.5, "End": true}}}),
                "States.S.Seconds",
            ),
            (
                json!({"StartAt": "S", "States": {"S": {"Type": "Wait", "Timestamp": "tomorrow", "End": true}}}),
                "States.S.Timestamp",
            ),
            (
                json!({"StartAt": "S", "States": {"S": {"Type": "Wait", "SecondsPath": "delay", "End": true}}}),
                "States.S.SecondsPath",
            ),
            (
                json!({"StartAt": "S", "States": {"S": {"Type": "Pass", "InputPath": "$.a[*]", "End": true}}}),
                "States.S.InputPath",
            ),
            (
                json!({"StartAt": "S", "States": {"S": {"Type": "Pass", "ResultPath": "$$.Execution", "End": true}}}),
                "States.S.ResultPath",
            ),
            (
                json!({"StartAt": "S", "States": {"S": {"Type": "Pass", "Parameters": {"a.$": "a"}, "End": true}}}),
                "States.S.Parameters.a.$",
            ),
            (
                json!({"StartAt": "S", "States": {"S": {"Type": "Pass", "Parameters": "x", "End": true}}}),
                "States.S.Parameters",
            ),
            (
                json!({"StartAt": "S", "States": {"S": {"Type": "Pass", "ResultSelector": {}, "End": true}}}),
                "States.S",
            ),
            (task(json!({"Resource": null})), "States.S.Resource"),
            (task(json!({"Resource": ""})), "States.S.Resource"),
            (
                task(json!({"TimeoutSeconds": 0})),
                "States.S.TimeoutSeconds",
            ),
            (
                task(json!({"TimeoutSeconds": 5, "TimeoutSecondsPath": "$.t"})),
                "States.S.TimeoutSecondsPath",
            ),
            (task(json!({"Next": null})), "States.S"),
            (task(json!({"Retry": {}})), "States.S.Retry"),
            (
                task(json!({"Retry": [{}]})),
                "States.S.Retry[0].ErrorEquals",
            ),
            (
                task(json!({"Retry": [{"ErrorEquals": []}]})),
                "States.S.Retry[0].ErrorEquals",
            ),
            (
                task(json!({"Retry": [{"ErrorEquals": [1]}]})),
                "States.S.Retry[0].ErrorEquals",
            ),
            (
                task(json!({"Retry": [{"ErrorEquals": ["States.Timeoutt"]}]})),
                "States.S.Retry[0].ErrorEquals",
            ),
            (
                task(json!({"Retry": [{"ErrorEquals": ["States.ALL", "E"]}]})),
                "States.S.Retry[0].ErrorEquals",
            ),
            (
                task(json!({"Retry": [{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["E"]}]})),
                "States.S.Retry[0].ErrorEquals",
            ),
            (
                task(json!({"Retry": [{"ErrorEquals": ["E"], "IntervalSeconds": 0}]})),
                "States.S.Retry[0].IntervalSeconds",
            ),
            (
                task(json!({"Retry": [{"ErrorEquals": ["E"], "MaxAttempts": -1}]})),
                "States.S.Retry[0].MaxAttempts",
            ),
            (
                task(json!({"Retry": [{"ErrorEquals": ["E"], "BackoffRate": 0.5}]})),
                "States.S.Retry[0].BackoffRate",
            ),
            (
                task(json!({"Retry": [{"ErrorEquals": ["E"], "MaxDelaySeconds": 0}]})),
                "States.S.Retry[0].MaxDelaySeconds",
            ),
            (
                task(json!({"Retry": [{"ErrorEquals": ["E"], "JitterStrategy": "PARTIAL"}]})),
                "States.S.Retry[0].JitterStrategy",
            ),
            (
                task(json!({"Retry": [{"ErrorEquals": ["E"], "Next": "Done"}]})),
                "States.S.Retry[0]",
            ),
            (
                task(json!({"Catch": [{"ErrorEquals": ["E"]}]})),
                "States.S.Catch[0].Next",
            ),
            (
                task(json!({"Catch": [{"ErrorEquals": ["E"], "Next": "Nowhere"}]})),
                "States.S.Catch[0].Next",
            ),
            (
                task(
                    json!({"Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Done"}, {"ErrorEquals": ["E"], "Next": "Done"}]}),
                ),
                "States.S.Catch[0].ErrorEquals",
            ),
            (
                task(
                    json!({"Catch": [{"ErrorEquals": ["E"], "Next": "Done", "ResultPath": "$$.x"}]}),
                ),
                "States.S.Catch[0].ResultPath",
            ),
            (task(json!({"Result": 1})), "States.S"),
        ];
        for (definition, location) in cases {
            match parse(definition.clone()) {
                Err(DefinitionError::Invalid {
                    location: found, ..
                })
                | Err(DefinitionError::UnknownState {
                    location: found, ..
                }) => {
                    assert_eq!(found, location, "{definition}");
                }
                other => panic!("{definition} should be rejected at {location}, got {other:?}"),
            }
        }
    }

    #[test]
    fn unsupported_features_are_named() {
        let cases = [
            (
                json!({"Type": "Parallel", "Branches": [], "End": true}),
                "the Parallel state type",
            ),
            (json!({"Type": "Map", "End": true}), "the Map state type"),
            (
                json!({"Type": "Task", "Resource": "arn:r", "HeartbeatSeconds": 5, "End": true}),
                "the field 'HeartbeatSeconds'",
            ),
            (
                json!({"Type": "Pass", "Assign": {"x": 1}, "End": true}),
                "the field 'Assign'",
            ),
            (
                json!({"Type": "Pass", "QueryLanguage": "JSONata", "End": true}),
                "the JSONata query language",
            ),
            (
                json!({"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken", "End": true}),
                "the .waitForTaskToken integration pattern",
            ),
        ];
        for (state, expected) in cases {
            let definition = json!({"StartAt": "S", "States": {"S": state}});
            match parse(definition.clone()) {
                Err(DefinitionError::Unsupported { feature, .. }) => assert_eq!(feature, expected),
                other => panic!("{definition}: expected Unsupported, got {other:?}"),
            }
        }
        assert!(matches!(
            parse(
                json!({"StartAt": "S", "QueryLanguage": "JSONata", "States": {"S": {"Type": "Succeed"}}})
            ),
            Err(DefinitionError::Unsupported { .. })
        ));
        assert!(matches!(
            StateMachine::parse("{not json"),
            Err(DefinitionError::Json(_))
        ));
    }

    #[test]
    fn states_reachable_only_through_catch_or_default_are_reachable() {
        let definition = json!({
            "StartAt": "T",
            "States": {
                "T": {"Type": "Task", "Resource": "arn:r", "Next": "C",
                      "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Handler"}]},
                "Handler": {"Type": "Fail", "Error": "E"},
                "C": {"Type": "Choice", "Choices": [{"Variable": "$.a", "IsNull": true, "Next": "T"}], "Default": "End"},
                "End": {"Type": "Succeed"}
            }
        });
        assert!(parse(definition).is_ok());
    }

    #[test]
    fn state_names_are_limited_to_80_characters() {
        let long = "x".repeat(81);
        let definition = json!({"StartAt": long, "States": {long.clone(): {"Type": "Succeed"}}});
        assert!(matches!(
            parse(definition),
            Err(DefinitionError::Invalid { .. })
        ));
        let ok = "x".repeat(80);
        assert!(parse(json!({"StartAt": ok, "States": {ok.clone(): {"Type": "Succeed"}}})).is_ok());
    }
}
