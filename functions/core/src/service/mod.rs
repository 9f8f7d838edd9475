//! What only backend services need: how a service's function is configured (runtime, handler,
//! memory, timeout, concurrency), checked once when it is parsed with the limits AWS Lambda
//! enforces, so `slipway dev` refuses what Lambda would refuse; and its environment ([`env`]).
//! Sites have `site` beside this.

pub mod env;

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::model::Traffic;
use crate::names::{ServiceName, SiteName};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FunctionConfigError {
    #[error("a handler needs a runtime to be checked against: give the runtime too")]
    HandlerWithoutRuntime,
    #[error("route must be /api or a path under it (/api/auth), of letters, digits, '-', '_' and '.': {0:?}")]
    Route(String),
    #[error("unknown runtime {0:?}: use provided.al2023, python3.9 to python3.13, nodejs20.x or nodejs22.x")]
    UnknownRuntime(String),
    #[error("handler {handler:?} does not fit {runtime}: {expected}")]
    Handler {
        runtime: Runtime,
        handler: String,
        expected: &'static str,
    },
    #[error("memory must be {min} to {max} MB, as Lambda allows: {0}", min = MemoryMb::MIN, max = MemoryMb::MAX)]
    Memory(u32),
    #[error("timeout must be {min} to {max} seconds, as Lambda allows: {0}", min = TimeoutSeconds::MIN, max = TimeoutSeconds::MAX)]
    Timeout(u32),
    #[error("concurrency must be {min} to {max} instances: {0}", min = Concurrency::MIN, max = Concurrency::MAX)]
    Concurrency(u32),
}

/// The Lambda runtimes slipway deploys, spelled as Lambda's `Runtime` field spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Runtime {
    /// A zip whose root holds an executable `bootstrap` that speaks the Runtime API.
    ProvidedAl2023,
    /// `python3.{minor}`, run by the runtime interface client `awslambdaric`.
    Python {
        minor: u8,
    },
    Nodejs20,
    Nodejs22,
}

impl Runtime {
    const PYTHON_MINORS: std::ops::RangeInclusive<u8> = 9..=13;

    pub fn parse(raw: &str) -> Result<Self, FunctionConfigError> {
        let unknown = || FunctionConfigError::UnknownRuntime(raw.to_owned());
        match raw {
            "provided.al2023" => Ok(Runtime::ProvidedAl2023),
            "nodejs20.x" => Ok(Runtime::Nodejs20),
            "nodejs22.x" => Ok(Runtime::Nodejs22),
            _ => {
                let minor: u8 = raw
                    .strip_prefix("python3.")
                    .filter(|m| !m.starts_with('0'))
                    .and_then(|m| m.parse().ok())
                    .ok_or_else(unknown)?;
                if Self::PYTHON_MINORS.contains(&minor) {
                    Ok(Runtime::Python { minor })
                } else {
                    Err(unknown())
                }
            }
        }
    }

    /// The handler Lambda's console gives a new function of this runtime.
    pub fn default_handler(self) -> Handler {
        Handler(
            match self {
                Runtime::ProvidedAl2023 => "bootstrap",
                Runtime::Python { .. } => "lambda_function.lambda_handler",
                Runtime::Nodejs20 | Runtime::Nodejs22 => "index.handler",
            }
            .to_owned(),
        )
    }

    /// `AWS_EXECUTION_ENV` as Lambda sets it (custom runtimes have none).
    pub fn execution_env(self) -> Option<String> {
        match self {
            Runtime::ProvidedAl2023 => None,
            other => Some(format!("AWS_Lambda_{other}")),
        }
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Runtime::ProvidedAl2023 => f.write_str("provided.al2023"),
            Runtime::Python { minor } => write!(f, "python3.{minor}"),
            Runtime::Nodejs20 => f.write_str("nodejs20.x"),
            Runtime::Nodejs22 => f.write_str("nodejs22.x"),
        }
    }
}

impl TryFrom<String> for Runtime {
    type Error = FunctionConfigError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Runtime> for String {
    fn from(value: Runtime) -> Self {
        value.to_string()
    }
}

/// What the runtime calls: `module.function` for Python (`pkg/mod.fn` and `pkg.mod.fn` both
/// name a module in a folder), `file.export` for Node (`src/api.handler`), anything for a
/// custom runtime (it is only passed on as `_HANDLER`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Handler(String);

impl Handler {
    const MAX_LEN: usize = 128;

    pub fn parse(runtime: Runtime, raw: &str) -> Result<Self, FunctionConfigError> {
        let refuse = |expected| FunctionConfigError::Handler {
            runtime,
            handler: raw.to_owned(),
            expected,
        };
        if raw.is_empty() || raw.len() > Self::MAX_LEN || raw.chars().any(char::is_whitespace) {
            return Err(refuse("1 to 128 characters without spaces"));
        }
        let identifier = |part: &str| {
            part.chars().next().is_some_and(|c| !c.is_ascii_digit())
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        };
        let is_path = |file: &str| {
            !file.is_empty()
                && !file.starts_with('/')
                && file
                    .split('/')
                    .all(|segment| !segment.is_empty() && segment != "." && segment != "..")
        };
        // Python's client splits at the last dot, Node's at the first (the rest is a property
        // path into the module).
        let well_formed = match runtime {
            Runtime::ProvidedAl2023 => true,
            Runtime::Python { .. } => raw
                .rsplit_once('.')
                .is_some_and(|(module, function)| is_path(module) && identifier(function)),
            Runtime::Nodejs20 | Runtime::Nodejs22 => raw
                .split_once('.')
                .is_some_and(|(file, export)| is_path(file) && export.split('.').all(identifier)),
        };
        if !well_formed {
            return Err(refuse(match runtime {
                Runtime::Python { .. } => {
                    "module.function, e.g. lambda_function.lambda_handler or app/main.handler"
                }
                _ => "file.export, e.g. index.handler or src/api.handler",
            }));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A whole number held to a range, with Lambda's default, checked when parsed.
macro_rules! bounded_u32 {
    ($($(#[$doc:meta])* $name:ident($min:literal ..= $max:literal, default $default:literal) => $error:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(try_from = "u32", into = "u32")]
        pub struct $name(u32);

        impl $name {
            pub const MIN: u32 = $min;
            pub const MAX: u32 = $max;
            pub const DEFAULT: $name = $name($default);

            pub fn get(self) -> u32 {
                self.0
            }
        }

        impl TryFrom<u32> for $name {
            type Error = FunctionConfigError;
            fn try_from(value: u32) -> Result<Self, Self::Error> {
                if ($name::MIN..=$name::MAX).contains(&value) {
                    Ok($name(value))
                } else {
                    Err(FunctionConfigError::$error(value))
                }
            }
        }

        impl From<$name> for u32 {
            fn from(value: $name) -> Self {
                value.0
            }
        }
    )*};
}

bounded_u32! {
    /// Memory in MB (Lambda: 128 to 10,240; 128 by default).
    MemoryMb(128..=10_240, default 128) => Memory;
    /// How long one invocation may run, in seconds (Lambda: 1 to 900; 3 by default).
    TimeoutSeconds(1..=900, default 3) => Timeout;
    /// The most instances of one function that run at once (Lambda's reserved concurrency).
    Concurrency(1..=1000, default 10) => Concurrency;
}

impl TimeoutSeconds {
    pub fn duration(self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.0))
    }
}

/// How a service's function runs: what a version freezes besides its code and environment.
/// Read from JSON, a missing field takes Lambda's default and the handler is checked against
/// the runtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "FunctionConfigFields")]
pub struct FunctionConfig {
    pub runtime: Runtime,
    pub handler: Handler,
    pub memory: MemoryMb,
    pub timeout: TimeoutSeconds,
    pub concurrency: Concurrency,
}

impl FunctionConfig {
    /// Lambda's defaults for `runtime`: its console's handler, 128 MB, 3 seconds.
    pub fn defaults(runtime: Runtime) -> Self {
        Self {
            runtime,
            handler: runtime.default_handler(),
            memory: MemoryMb::DEFAULT,
            timeout: TimeoutSeconds::DEFAULT,
            concurrency: Concurrency::DEFAULT,
        }
    }
}

/// What a service asks of its function before its first deploy: a runtime not given is
/// detected from the source then, and so is the handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSettings {
    pub runtime: Option<Runtime>,
    pub handler: Option<Handler>,
    pub memory: MemoryMb,
    pub timeout: TimeoutSeconds,
    pub concurrency: Concurrency,
}

impl ServiceSettings {
    /// Checks a handler against its runtime; a handler needs one.
    pub fn new(
        runtime: Option<Runtime>,
        handler: Option<&str>,
        memory: MemoryMb,
        timeout: TimeoutSeconds,
        concurrency: Concurrency,
    ) -> Result<Self, FunctionConfigError> {
        let handler = match (runtime, handler) {
            (_, None) => None,
            (Some(runtime), Some(raw)) => Some(Handler::parse(runtime, raw)?),
            (None, Some(_)) => return Err(FunctionConfigError::HandlerWithoutRuntime),
        };
        Ok(Self {
            runtime,
            handler,
            memory,
            timeout,
            concurrency,
        })
    }
}

/// A service's path on its site's hosts: `/api`, or a path under it (`/api/auth`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ApiRoute(String);

impl ApiRoute {
    const MAX_LEN: usize = 128;

    pub fn parse(raw: &str) -> Result<Self, FunctionConfigError> {
        let refuse = || FunctionConfigError::Route(raw.to_owned());
        if raw.len() > Self::MAX_LEN {
            return Err(refuse());
        }
        let rest = raw.strip_prefix("/api").ok_or_else(refuse)?;
        if !rest.is_empty() {
            let segments = rest.strip_prefix('/').ok_or_else(refuse)?;
            let valid = segments.split('/').all(|segment| {
                !segment.is_empty()
                    && segment != "."
                    && segment != ".."
                    && segment
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            });
            if !valid {
                return Err(refuse());
            }
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ApiRoute {
    type Error = FunctionConfigError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<ApiRoute> for String {
    fn from(value: ApiRoute) -> Self {
        value.0
    }
}

/// A backend service of a site: one function, its own URL, and optionally a path under
/// `/api` on the site's hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub site: SiteName,
    pub name: ServiceName,
    pub settings: ServiceSettings,
    pub route: Option<ApiRoute>,
    pub created_at: OffsetDateTime,
    /// What production serves: a stable version and, during a canary, the new one's share.
    pub production: Option<Traffic>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FunctionConfigFields {
    runtime: Runtime,
    handler: Option<String>,
    memory: Option<MemoryMb>,
    timeout: Option<TimeoutSeconds>,
    concurrency: Option<Concurrency>,
}

impl TryFrom<FunctionConfigFields> for FunctionConfig {
    type Error = FunctionConfigError;
    fn try_from(fields: FunctionConfigFields) -> Result<Self, Self::Error> {
        let defaults = FunctionConfig::defaults(fields.runtime);
        Ok(Self {
            handler: match fields.handler {
                Some(raw) => Handler::parse(fields.runtime, &raw)?,
                None => defaults.handler,
            },
            memory: fields.memory.unwrap_or(defaults.memory),
            timeout: fields.timeout.unwrap_or(defaults.timeout),
            concurrency: fields.concurrency.unwrap_or(defaults.concurrency),
            runtime: fields.runtime,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtimes_round_trip_as_lambda_spells_them() {
        for raw in [
            "provided.al2023",
            "python3.9",
            "python3.13",
            "nodejs20.x",
            "nodejs22.x",
        ] {
            assert_eq!(Runtime::parse(raw).unwrap().to_string(), raw);
        }
        for bad in [
            "python3.8",
            "python3.14",
            "python3.012",
            "python",
            "nodejs18.x",
            "go1.x",
            "",
        ] {
            assert!(
                matches!(
                    Runtime::parse(bad),
                    Err(FunctionConfigError::UnknownRuntime(_))
                ),
                "{bad:?}"
            );
        }
        assert_eq!(
            Runtime::Python { minor: 12 }.execution_env().as_deref(),
            Some("AWS_Lambda_python3.12")
        );
        assert_eq!(Runtime::ProvidedAl2023.execution_env(), None);
    }

    #[test]
    fn handlers_must_fit_their_runtime() {
        let python = Runtime::Python { minor: 12 };
        for good in [
            "lambda_function.lambda_handler",
            "app/main.handler",
            "pkg.mod.fn",
        ] {
            assert!(Handler::parse(python, good).is_ok(), "{good}");
        }
        for good in [
            "index.handler",
            "src/api.handler",
            "index.$default",
            "app.routes.get",
        ] {
            assert!(Handler::parse(Runtime::Nodejs22, good).is_ok(), "{good}");
        }
        for bad in [
            "handler",
            "main.",
            ".handler",
            "../x.handler",
            "/abs.handler",
            "a b.c",
            "m.2fn",
        ] {
            assert!(
                matches!(
                    Handler::parse(python, bad),
                    Err(FunctionConfigError::Handler { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(Handler::parse(Runtime::ProvidedAl2023, "anything-goes").is_ok());
    }

    #[test]
    fn routes_are_api_or_paths_under_it() {
        for good in ["/api", "/api/auth", "/api/v2/users", "/api/a.b_c-d"] {
            assert_eq!(ApiRoute::parse(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            "/",
            "api",
            "/apis",
            "/api/",
            "/api//x",
            "/api/../x",
            "/api/a b",
            "/other",
        ] {
            assert!(
                matches!(ApiRoute::parse(bad), Err(FunctionConfigError::Route(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_handler_is_checked_against_the_runtime_it_comes_with() {
        let sizes = (
            MemoryMb::DEFAULT,
            TimeoutSeconds::DEFAULT,
            Concurrency::DEFAULT,
        );
        let settings =
            |runtime, handler| ServiceSettings::new(runtime, handler, sizes.0, sizes.1, sizes.2);
        assert!(settings(None, None).is_ok());
        assert!(settings(Some(Runtime::Nodejs22), Some("index.handler")).is_ok());
        assert!(matches!(
            settings(None, Some("index.handler")),
            Err(FunctionConfigError::HandlerWithoutRuntime)
        ));
        assert!(matches!(
            settings(Some(Runtime::Nodejs22), Some("index")),
            Err(FunctionConfigError::Handler { .. })
        ));
    }

    #[test]
    fn sizes_are_held_to_lambdas_limits() {
        assert!(MemoryMb::try_from(127).is_err());
        assert_eq!(MemoryMb::try_from(10_240).unwrap().get(), 10_240);
        assert!(MemoryMb::try_from(10_241).is_err());
        assert!(TimeoutSeconds::try_from(0).is_err());
        assert_eq!(TimeoutSeconds::try_from(900).unwrap().get(), 900);
        assert!(TimeoutSeconds::try_from(901).is_err());
        assert!(Concurrency::try_from(0).is_err());
        let config: FunctionConfig = serde_json::from_value(serde_json::json!({
            "runtime": "python3.12",
            "handler": "app.handler",
            "memory": 256,
            "timeout": 10,
            "concurrency": 2,
        }))
        .unwrap();
        assert_eq!(config.runtime, Runtime::Python { minor: 12 });
        assert_eq!(
            serde_json::to_value(&config).unwrap()["handler"],
            "app.handler"
        );
        assert!(serde_json::from_value::<MemoryMb>(serde_json::json!(64)).is_err());
        let defaults: FunctionConfig =
            serde_json::from_value(serde_json::json!({"runtime": "nodejs22.x"})).unwrap();
        assert_eq!(defaults, FunctionConfig::defaults(Runtime::Nodejs22));
        assert_eq!(defaults.handler.as_str(), "index.handler");
        let mismatched = serde_json::json!({"runtime": "python3.12", "handler": "main"});
        assert!(serde_json::from_value::<FunctionConfig>(mismatched).is_err());
    }
}
