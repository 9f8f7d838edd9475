//! The command line's shape. Parsing turns names and ids into their domain types here,
//! so a bad site name is a usage error (exit 2) before any request is made.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{Args, CommandFactory, Parser, Subcommand};
use slipway_aws::signing::execute_api_region;
use slipway_core::names::{BranchName, DeploymentId, RepoName, RootDir, ServiceName, SiteName};
use slipway_core::site::zipsafe::ZipLimits;
use slipway_local::dev::DevLimits;

use crate::client::Endpoint;

pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:7070";
pub const DEFAULT_API_ADDR: &str = "127.0.0.1:7070";
pub const DEFAULT_EDGE_ADDR: &str = "127.0.0.1:7080";
pub const DEFAULT_STATE_DIR: &str = ".slipway";

#[derive(Debug, Parser)]
#[command(
    name = "slipway",
    version,
    about = "Deploy static sites through slipway's pipeline, locally with `slipway dev` or on AWS."
)]
pub struct Cli {
    /// Print exactly one JSON document on stdout; progress and messages go to stderr.
    #[arg(long, global = true)]
    pub json: bool,

    /// More log output on stderr (-v debug, -vv trace). RUST_LOG overrides it.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// How client commands reach the API; valid before or after the subcommand, as
    /// `aws --endpoint-url` is.
    #[command(flatten)]
    pub connection: ClientArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole control plane on this machine: the API and the local edge.
    Dev(DevArgs),
    /// Start `slipway dev` in this process and deploy the bundled example site through it.
    Demo(DemoArgs),
    /// Create, list and inspect sites.
    #[command(subcommand)]
    Sites(SitesCommand),
    /// Create, list, inspect and delete a site's backend services.
    #[command(subcommand)]
    Services(ServicesCommand),
    /// Deploy a directory or a .zip to a site and wait until it is live (see --no-wait).
    Deploy(DeployArgs),
    /// List a site's deployments, newest first.
    Deployments(DeploymentsArgs),
    /// Make an earlier deployment live again (by default the previously live one).
    Rollback(RollbackArgs),
    /// Make production serve a preview's deployment: one routing write, no rebuild.
    Promote(PromoteArgs),
    /// List a site's previews (branches and pull requests) with their URLs.
    Previews(PreviewsArgs),
    /// Print a deployment's build log.
    Logs(LogsArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Where the embedded state (SQLite, objects, build scratch) lives.
    #[arg(long, default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Address the control-plane API listens on.
    #[arg(long, default_value = DEFAULT_API_ADDR)]
    pub api_addr: SocketAddr,
    /// Address the local edge listens on; sites answer at http://{site}.localhost:{port}/.
    #[arg(long, default_value = DEFAULT_EDGE_ADDR)]
    pub edge_addr: SocketAddr,
    /// Largest source zip the upload endpoint accepts, in bytes.
    #[arg(long, default_value_t = DevLimits::default().max_upload_bytes)]
    pub max_upload_bytes: u64,
    /// Zip bomb guard: most uncompressed bytes a source or build output may hold.
    #[arg(long, default_value_t = DevLimits::default().zip.max_total_bytes)]
    pub max_unzipped_bytes: u64,
    /// Zip bomb guard: most entries a zip may hold.
    #[arg(long, default_value_t = DevLimits::default().zip.max_entries)]
    pub max_zip_entries: u64,
    /// Zip bomb guard: highest compression ratio of any entry over 1 MiB.
    #[arg(long, default_value_t = DevLimits::default().zip.max_ratio)]
    pub max_compression_ratio: u64,
}

impl ServerArgs {
    pub fn limits(&self) -> DevLimits {
        let defaults = DevLimits::default();
        DevLimits {
            zip: ZipLimits {
                max_entries: self.max_zip_entries,
                max_total_bytes: self.max_unzipped_bytes,
                max_entry_bytes: defaults.zip.max_entry_bytes.min(self.max_unzipped_bytes),
                max_ratio: self.max_compression_ratio,
            },
            max_upload_bytes: self.max_upload_bytes,
        }
    }
}

#[derive(Debug, Args)]
pub struct DevArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub github: GithubArgs,
}

/// `slipway dev`'s GitHub settings.
#[derive(Debug, Clone, Args)]
pub struct GithubArgs {
    /// The secret GitHub signs webhook deliveries with; without it `POST /webhooks/github`
    /// refuses every delivery.
    #[arg(long, env = "SLIPWAY_GITHUB_WEBHOOK_SECRET", hide_env_values = true)]
    pub github_webhook_secret: Option<String>,
    /// The token commit statuses are sent with (`repo:status`, or "Commit statuses: write").
    #[arg(long, env = "SLIPWAY_GITHUB_TOKEN", hide_env_values = true)]
    pub github_token: Option<String>,
    /// The GitHub REST API; GitHub Enterprise Server is `https://HOST/api/v3`.
    #[arg(long, env = "SLIPWAY_GITHUB_API_URL", default_value = slipway_github::DEFAULT_API_URL)]
    pub github_api_url: String,
}

impl GithubArgs {
    /// No webhooks and no commit statuses (the demo deploys a directory).
    pub fn off() -> Self {
        Self {
            github_webhook_secret: None,
            github_token: None,
            github_api_url: slipway_github::DEFAULT_API_URL.to_owned(),
        }
    }
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Exit once the example site is live and answering, instead of serving until Ctrl-C.
    #[arg(long)]
    pub exit: bool,
}

/// How client commands reach the API (global: before or after the subcommand).
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The control-plane API: `slipway dev`'s address, or the stack's ApiUrl output
    /// (https://{api-id}.execute-api.{region}.amazonaws.com).
    #[arg(long, env = "SLIPWAY_ENDPOINT", default_value = DEFAULT_ENDPOINT, global = true)]
    pub endpoint: Endpoint,
    /// The API's bearer token: client commands send it (`Authorization: Bearer TOKEN`, never
    /// to AWS), and `slipway dev --token` requires it on every API request.
    #[arg(long, env = "SLIPWAY_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Sign requests with AWS credentials (SigV4) even though the endpoint is not an
    /// execute-api host name, e.g. an API Gateway custom domain. Requests to
    /// *.execute-api.{region}.amazonaws.com are always signed.
    #[arg(long, env = "SLIPWAY_SIGV4", value_parser = BoolishValueParser::new(), global = true)]
    pub sigv4: bool,
    /// The AWS profile whose credentials sign requests, and nothing else, as with
    /// `aws --profile`. Without it: the environment's keys, then AWS_PROFILE or `default`
    /// (SSO included), then a container or instance role.
    #[arg(long, value_name = "NAME", global = true)]
    pub profile: Option<String>,
    /// The AWS region requests are signed for. Without it: the region in an execute-api
    /// endpoint, then AWS_REGION or the profile's region.
    #[arg(long, value_name = "REGION", global = true)]
    pub region: Option<String>,
}

/// How a client command proves who it is to the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiAuth<'a> {
    /// `slipway dev`: a bearer token, if it asks for one.
    Bearer(Option<&'a str>),
    /// The API on AWS: SigV4 with credentials from the standard chain.
    SigV4 {
        profile: Option<&'a str>,
        region: Option<&'a str>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum AuthConflict {
    #[error("a bearer token (--token or SLIPWAY_TOKEN) cannot be sent to {endpoint}: requests to it are signed with AWS credentials (SigV4) instead; drop the token")]
    TokenWithSigV4 { endpoint: Endpoint },
    #[error("--profile and --region choose the AWS credentials that sign requests, but {endpoint} is not an execute-api endpoint; add --sigv4 if it is an API Gateway custom domain")]
    AwsFlagsWithoutSigV4 { endpoint: Endpoint },
}

impl ClientArgs {
    /// SigV4 for execute-api hosts and with `--sigv4`; otherwise the bearer token, if any.
    /// Flags that belong to the other scheme are refused rather than ignored.
    pub fn auth(&self) -> Result<ApiAuth<'_>, AuthConflict> {
        let aws_host = self.endpoint.host().and_then(execute_api_region).is_some();
        if self.sigv4 || aws_host {
            if self.token.is_some() {
                return Err(AuthConflict::TokenWithSigV4 {
                    endpoint: self.endpoint.clone(),
                });
            }
            return Ok(ApiAuth::SigV4 {
                profile: self.profile.as_deref(),
                region: self.region.as_deref(),
            });
        }
        if self.profile.is_some() || self.region.is_some() {
            return Err(AuthConflict::AwsFlagsWithoutSigV4 {
                endpoint: self.endpoint.clone(),
            });
        }
        Ok(ApiAuth::Bearer(self.token.as_deref()))
    }
}

#[derive(Debug, Subcommand)]
pub enum SitesCommand {
    /// Create a site.
    Create(SitesCreateArgs),
    /// List sites.
    List(SitesListArgs),
    /// Show one site.
    Show(SitesShowArgs),
}

#[derive(Debug, Args)]
pub struct SitesCreateArgs {
    /// The new site's name, which becomes its host name: up to 63 lowercase letters, digits
    /// and single hyphens.
    pub name: SiteName,
    /// Single-page app: every path without a file extension serves /index.html
    /// (client-side routes).
    #[arg(long)]
    pub spa: bool,
    /// Clean URLs: `/about` serves `/about.html` (or `about/index.html` when there is no
    /// `about.html`); `/about/` serves `/about/index.html`.
    #[arg(long)]
    pub clean_urls: bool,
    /// How many finished deployments to keep, per production and per preview.
    #[arg(long, value_name = "N")]
    pub retain: Option<u32>,
    /// Link the site to a GitHub repository: pushes to --branch deploy production, other
    /// branches and pull requests deploy previews.
    #[arg(long, value_name = "OWNER/REPO")]
    pub repo: Option<RepoName>,
    /// The production branch [default: main].
    #[arg(long, value_name = "BRANCH", requires = "repo")]
    pub branch: Option<BranchName>,
    /// The app's directory inside the repository (a monorepo): builds run there.
    #[arg(long, value_name = "DIR", requires = "repo")]
    pub root: Option<RootDir>,
}

#[derive(Debug, Args)]
pub struct SitesListArgs {}

#[derive(Debug, Args)]
pub struct SitesShowArgs {
    /// The site to show.
    pub name: SiteName,
}

#[derive(Debug, Subcommand)]
pub enum ServicesCommand {
    /// Add a service to a site: one function with its own URL.
    Create(ServicesCreateArgs),
    /// List a site's services.
    List(ServicesListArgs),
    /// Show one service, with what it serves.
    Show(ServiceArgs),
    /// Delete a service.
    Delete(ServiceArgs),
}

#[derive(Debug, Args)]
pub struct ServicesCreateArgs {
    /// The service's name: a DNS label that starts with a letter. Its own host is
    /// `{name}--{site}` under the services domain.
    pub name: ServiceName,
    /// The site it belongs to.
    #[arg(long)]
    pub site: SiteName,
    /// provided.al2023, python3.9 to python3.13, nodejs20.x or nodejs22.x [default: detected
    /// from the first deploy's source].
    #[arg(long)]
    pub runtime: Option<String>,
    /// What the runtime calls: `module.function` (Python), `file.export` (Node) [default: the
    /// runtime's, e.g. lambda_function.lambda_handler, index.handler]. Needs --runtime.
    #[arg(long, requires = "runtime")]
    pub handler: Option<String>,
    /// Its path on the site's hosts, previews included: `/api` or a path under it.
    #[arg(long, value_name = "/api/...")]
    pub route: Option<String>,
    /// Memory in MB, 128 to 10240 [default: 128].
    #[arg(long, value_name = "MB")]
    pub memory: Option<u32>,
    /// How long one request may run, 1 to 900 [default: 3].
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u32>,
    /// The most instances at once, 1 to 1000 [default: 10].
    #[arg(long, value_name = "N")]
    pub concurrency: Option<u32>,
}

#[derive(Debug, Args)]
pub struct ServicesListArgs {
    /// The site whose services to list.
    #[arg(long)]
    pub site: SiteName,
}

#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// The service.
    pub name: ServiceName,
    /// The site it belongs to.
    #[arg(long)]
    pub site: SiteName,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// A directory or a .zip file. A directory is zipped here, leaving out what its
    /// .slipwayignore (and, for source, .gitignore) files list, .env files and .git/.
    pub path: PathBuf,
    /// The site to deploy to (it must exist: `slipway sites create NAME`).
    #[arg(long)]
    pub site: SiteName,
    /// The source is already built output: publish it as it is, without a build.
    #[arg(long)]
    pub prebuilt: bool,
    /// How long to wait, once uploaded, for the deployment to finish: `90s`, `10m`, `1h`
    /// or plain seconds. It keeps going after the CLI stops waiting.
    #[arg(long, value_name = "DURATION", default_value_t = WaitTimeout::DEFAULT, conflicts_with = "no_wait")]
    pub timeout: WaitTimeout,
    /// Return once the source is uploaded, with the deployment queued, instead of waiting
    /// for it to go live.
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(Debug, Args)]
pub struct DeploymentsArgs {
    /// The site whose deployments to list.
    pub site: SiteName,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The site to roll back.
    pub site: SiteName,
    /// The deployment to make live; defaults to the previously live one.
    #[arg(long, value_name = "ID")]
    pub to: Option<DeploymentId>,
}

#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// The site whose production to change.
    pub site: SiteName,
    /// A preview target (`pr-12`, `feature-x`: see `slipway previews`) or a deployment id.
    #[arg(long, value_name = "TARGET|ID")]
    pub from: String,
}

#[derive(Debug, Args)]
pub struct PreviewsArgs {
    /// The site whose previews to list.
    pub site: SiteName,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The deployment, by the id `deploy` and `deployments` print.
    pub id: DeploymentId,
    /// Keep printing new lines until the deployment finishes.
    #[arg(long)]
    pub follow: bool,
}

/// How long `deploy` waits for a deployment to finish; whole seconds, at least one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitTimeout(Duration);

#[derive(Debug, thiserror::Error)]
pub enum WaitTimeoutError {
    #[error("{0:?} is not a duration; use a whole number with s, m or h (90s, 10m, 1h), or plain seconds")]
    Syntax(String),
    #[error("the timeout must be at least one second")]
    Zero,
    #[error("{0:?} is too long")]
    TooLong(String),
}

impl WaitTimeout {
    pub const DEFAULT: WaitTimeout = WaitTimeout(Duration::from_secs(30 * 60));

    pub fn duration(self) -> Duration {
        self.0
    }
}

impl FromStr for WaitTimeout {
    type Err = WaitTimeoutError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let syntax = || WaitTimeoutError::Syntax(raw.to_owned());
        let (digits, unit) = match raw.find(|c: char| !c.is_ascii_digit()) {
            Some(at) => raw.split_at(at),
            None => (raw, "s"),
        };
        let per_unit = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            _ => return Err(syntax()),
        };
        if digits.is_empty() {
            return Err(syntax());
        }
        let count: u64 = digits
            .parse()
            .map_err(|_| WaitTimeoutError::TooLong(raw.to_owned()))?;
        let secs = count
            .checked_mul(per_unit)
            .ok_or_else(|| WaitTimeoutError::TooLong(raw.to_owned()))?;
        if secs == 0 {
            return Err(WaitTimeoutError::Zero);
        }
        Ok(Self(Duration::from_secs(secs)))
    }
}

/// The largest whole unit: `30m`, `90s`, `2h`.
impl fmt::Display for WaitTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        match secs {
            s if s % 3600 == 0 => write!(f, "{}h", s / 3600),
            s if s % 60 == 0 => write!(f, "{}m", s / 60),
            s => write!(f, "{s}s"),
        }
    }
}

impl Cli {
    /// Checks across flags that clap cannot express; a conflict is a usage error (exit 2)
    /// like any other, raised before anything runs.
    pub fn checked(self) -> Result<Self, clap::Error> {
        if self.command.is_client() {
            if let Err(conflict) = self.connection.auth() {
                return Err(
                    Cli::command().error(clap::error::ErrorKind::ArgumentConflict, conflict)
                );
            }
        }
        Ok(self)
    }
}

impl Command {
    /// Whether the command talks to the API (the servers ignore the connection options).
    fn is_client(&self) -> bool {
        !matches!(self, Command::Dev(_) | Command::Demo(_))
    }

    /// Servers log their work by default; client commands stay quiet unless asked.
    pub fn default_log_level(&self) -> &'static str {
        // The demo stays quiet too: its progress output is the show, and server logs would
        // interleave with it.
        match self {
            Command::Dev(_) => "info",
            _ => "warn",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Tests that read or set SLIPWAY_* variables take this, since clap reads the process
    /// environment while parsing.
    static ENV: Mutex<()> = Mutex::new(());

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("slipway").chain(args.iter().copied()))
    }

    fn parse_clean(args: &[&str]) -> Cli {
        let _env = ENV.lock().unwrap_or_else(|e| e.into_inner());
        clear_env();
        parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    fn clear_env() {
        for name in ["SLIPWAY_ENDPOINT", "SLIPWAY_TOKEN", "SLIPWAY_SIGV4"] {
            std::env::remove_var(name);
        }
    }

    /// Parsed and checked as `main` does, for the `sites list` client arguments.
    fn sites_list(args: &[&str]) -> Result<ClientArgs, clap::Error> {
        let _env = ENV.lock().unwrap_or_else(|e| e.into_inner());
        clear_env();
        let args: Vec<&str> = ["sites", "list"].iter().chain(args).copied().collect();
        let cli = parse(&args).and_then(Cli::checked)?;
        assert!(matches!(cli.command, Command::Sites(SitesCommand::List(_))));
        Ok(cli.connection)
    }

    const AWS_API: &str = "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com";

    #[test]
    fn execute_api_endpoints_and_the_switch_choose_sigv4() {
        let aws = sites_list(&["--endpoint", AWS_API]).unwrap();
        assert_eq!(
            aws.auth().unwrap(),
            ApiAuth::SigV4 {
                profile: None,
                region: None
            }
        );
        let chosen = sites_list(&[
            "--endpoint",
            AWS_API,
            "--profile",
            "prod",
            "--region",
            "eu-west-1",
        ])
        .unwrap();
        assert_eq!(
            chosen.auth().unwrap(),
            ApiAuth::SigV4 {
                profile: Some("prod"),
                region: Some("eu-west-1")
            }
        );
        let custom_domain = ["--endpoint", "https://api.example.com"];
        assert_eq!(
            sites_list(&custom_domain).unwrap().auth().unwrap(),
            ApiAuth::Bearer(None)
        );
        let switched = sites_list(&[&custom_domain[..], &["--sigv4"]].concat()).unwrap();
        assert!(matches!(switched.auth(), Ok(ApiAuth::SigV4 { .. })));
        assert_eq!(
            sites_list(&["--token", "t0k"]).unwrap().auth().unwrap(),
            ApiAuth::Bearer(Some("t0k"))
        );

        let _env = ENV.lock().unwrap_or_else(|e| e.into_inner());
        std::env::set_var("SLIPWAY_SIGV4", "1");
        let from_env = parse(&["sites", "list", "--endpoint", "https://api.example.com"]);
        std::env::set_var("SLIPWAY_SIGV4", "0");
        let off = parse(&["sites", "list", "--endpoint", "https://api.example.com"]);
        clear_env();
        assert!(from_env.unwrap().connection.sigv4);
        assert!(!off.unwrap().connection.sigv4);
    }

    #[test]
    fn mixing_a_bearer_token_with_sigv4_is_a_usage_error() {
        for args in [
            &["--endpoint", AWS_API, "--token", "t0k"][..],
            &[
                "--endpoint",
                "http://127.0.0.1:7070",
                "--sigv4",
                "--token",
                "t0k",
            ],
        ] {
            let err = sites_list(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
            assert!(
                err.to_string()
                    .contains("a bearer token (--token or SLIPWAY_TOKEN) cannot be sent"),
                "{err}"
            );
        }
        let err = sites_list(&["--profile", "prod"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("add --sigv4"), "{err}");
        assert_eq!(
            sites_list(&["--region", "us-east-1"])
                .unwrap_err()
                .exit_code(),
            2
        );
        // Server commands have no client flags to check.
        let _env = ENV.lock().unwrap_or_else(|e| e.into_inner());
        clear_env();
        assert!(parse(&["dev", "--token", "t0k"])
            .and_then(Cli::checked)
            .is_ok());
    }

    #[test]
    fn dev_has_local_defaults_and_takes_addresses() {
        let Command::Dev(dev) = parse_clean(&["dev"]).command else {
            panic!("not dev")
        };
        assert_eq!(dev.server.state_dir, PathBuf::from(".slipway"));
        assert_eq!(dev.server.api_addr, "127.0.0.1:7070".parse().unwrap());
        assert_eq!(dev.server.edge_addr, "127.0.0.1:7080".parse().unwrap());

        let cli = parse_clean(&[
            "dev",
            "--state-dir",
            "/tmp/s",
            "--api-addr",
            "127.0.0.1:0",
            "--edge-addr",
            "0.0.0.0:9000",
            "--token",
            "t0k",
            "--json",
        ]);
        assert!(cli.json);
        assert_eq!(cli.connection.token.as_deref(), Some("t0k"));
        let Command::Dev(dev) = cli.command else {
            panic!("not dev")
        };
        assert_eq!(dev.server.state_dir, PathBuf::from("/tmp/s"));
        assert_eq!(dev.server.api_addr.port(), 0);
        assert_eq!(dev.server.edge_addr, "0.0.0.0:9000".parse().unwrap());
    }

    #[test]
    fn demo_takes_server_addresses_and_exit() {
        let Command::Demo(demo) =
            parse_clean(&["demo", "--exit", "--api-addr", "127.0.0.1:0"]).command
        else {
            panic!("not demo")
        };
        assert!(demo.exit);
        assert_eq!(demo.server.api_addr.port(), 0);
        assert_eq!(demo.server.state_dir, PathBuf::from(".slipway"));
        // The demo's server requires the token, and its own requests send it.
        let cli = parse_clean(&["demo", "--token", "x"]);
        assert_eq!(cli.connection.token.as_deref(), Some("x"));
    }

    #[test]
    fn sites_commands_parse_names_and_flags() {
        let Command::Sites(SitesCommand::Create(create)) = parse_clean(&[
            "sites",
            "create",
            "docs",
            "--spa",
            "--clean-urls",
            "--retain",
            "5",
        ])
        .command
        else {
            panic!("not sites create")
        };
        assert_eq!(create.name.as_str(), "docs");
        assert!(create.spa && create.clean_urls);
        assert_eq!(create.retain, Some(5));

        let Command::Sites(SitesCommand::Create(plain)) =
            parse_clean(&["sites", "create", "blog"]).command
        else {
            panic!("not sites create")
        };
        assert!(!plain.spa && !plain.clean_urls && plain.retain.is_none());

        assert!(matches!(
            parse_clean(&["sites", "list", "--json"]).command,
            Command::Sites(SitesCommand::List(_))
        ));
        let Command::Sites(SitesCommand::Show(show)) =
            parse_clean(&["sites", "show", "docs"]).command
        else {
            panic!("not sites show")
        };
        assert_eq!(show.name.as_str(), "docs");
    }

    #[test]
    fn deploy_needs_a_path_and_a_valid_site() {
        let Command::Deploy(deploy) =
            parse_clean(&["deploy", "./public", "--site", "docs", "--prebuilt"]).command
        else {
            panic!("not deploy")
        };
        assert_eq!(deploy.path, PathBuf::from("./public"));
        assert_eq!(deploy.site.as_str(), "docs");
        assert!(deploy.prebuilt);

        let Command::Deploy(source) =
            parse_clean(&["deploy", "site.zip", "--site", "docs"]).command
        else {
            panic!("not deploy")
        };
        assert!(!source.prebuilt);

        assert_eq!(source.timeout, WaitTimeout::DEFAULT);
        assert!(!source.no_wait);

        let Command::Deploy(quick) =
            parse_clean(&["deploy", ".", "--site", "docs", "--timeout", "90s"]).command
        else {
            panic!("not deploy")
        };
        assert_eq!(quick.timeout.duration(), Duration::from_secs(90));
        let Command::Deploy(detached) =
            parse_clean(&["deploy", ".", "--site", "docs", "--no-wait"]).command
        else {
            panic!("not deploy")
        };
        assert!(detached.no_wait);
        assert_eq!(
            parse(&[
                "deploy",
                ".",
                "--site",
                "docs",
                "--no-wait",
                "--timeout",
                "5m"
            ])
            .err()
            .map(|e| e.exit_code()),
            Some(2),
            "--no-wait and --timeout contradict each other"
        );

        assert!(
            parse(&["deploy", "./public"]).is_err(),
            "--site is required"
        );
        assert!(
            parse(&["deploy", "--site", "docs"]).is_err(),
            "PATH is required"
        );
    }

    #[test]
    fn deployments_rollback_and_logs_parse_ids() {
        let id = "01jd0000000000000000000000";
        let Command::Deployments(list) = parse_clean(&["deployments", "docs"]).command else {
            panic!("not deployments")
        };
        assert_eq!(list.site.as_str(), "docs");

        let Command::Rollback(back) = parse_clean(&["rollback", "docs"]).command else {
            panic!("not rollback")
        };
        assert_eq!(back.to, None);
        let Command::Rollback(to) = parse_clean(&["rollback", "docs", "--to", id]).command else {
            panic!("not rollback")
        };
        assert_eq!(to.to.map(|id| id.to_string()).as_deref(), Some(id));

        let Command::Logs(logs) = parse_clean(&["logs", id, "--follow"]).command else {
            panic!("not logs")
        };
        assert_eq!(logs.id.to_string(), id);
        assert!(logs.follow);
        let Command::Logs(once) = parse_clean(&["logs", id]).command else {
            panic!("not logs")
        };
        assert!(!once.follow);
    }

    #[test]
    fn bad_names_ids_and_addresses_are_usage_errors() {
        let _env = ENV.lock().unwrap_or_else(|e| e.into_inner());
        for args in [
            &["sites", "create", "Bad_Name"][..],
            &["deploy", ".", "--site", "pr-1--docs"],
            &["rollback", "docs", "--to", "not-an-id"],
            &["logs", "01JD0000000000000000000000"],
            &["dev", "--api-addr", "localhost"],
            &["deployments", "docs", "--endpoint", "ftp://api.example.com"],
            &["sites", "list", "--retain", "3"],
            &["bogus"],
        ] {
            let err = parse(args)
                .err()
                .unwrap_or_else(|| panic!("{args:?} parsed"));
            assert_eq!(err.exit_code(), 2, "{args:?}: {err}");
        }
    }

    #[test]
    fn endpoint_and_token_come_from_flags_then_environment() {
        let _env = ENV.lock().unwrap_or_else(|e| e.into_inner());
        std::env::set_var("SLIPWAY_ENDPOINT", "http://10.0.0.5:9000/");
        std::env::set_var("SLIPWAY_TOKEN", "from-env");
        let from_env = parse(&["sites", "list"]);
        let from_flags = parse(&[
            "sites",
            "list",
            "--endpoint",
            "http://127.0.0.1:1234",
            "--token",
            "from-flag",
        ]);
        let dev = parse(&["dev"]);
        std::env::remove_var("SLIPWAY_ENDPOINT");
        std::env::remove_var("SLIPWAY_TOKEN");

        let env_args = from_env.unwrap().connection;
        assert_eq!(env_args.endpoint.to_string(), "http://10.0.0.5:9000");
        assert_eq!(env_args.token.as_deref(), Some("from-env"));

        let flag_args = from_flags.unwrap().connection;
        assert_eq!(flag_args.endpoint.to_string(), "http://127.0.0.1:1234");
        assert_eq!(flag_args.token.as_deref(), Some("from-flag"));

        // The server side reads the same variable, so one export configures both.
        assert_eq!(dev.unwrap().connection.token.as_deref(), Some("from-env"));
    }

    #[test]
    fn connection_options_and_output_flags_work_before_the_subcommand_too() {
        for args in [
            &[
                "--endpoint",
                "http://127.0.0.1:1234",
                "--token",
                "t0k",
                "--json",
                "sites",
                "list",
            ][..],
            &[
                "sites",
                "--endpoint",
                "http://127.0.0.1:1234",
                "list",
                "--token",
                "t0k",
                "--json",
            ],
            &[
                "sites",
                "list",
                "--endpoint",
                "http://127.0.0.1:1234",
                "--token",
                "t0k",
                "--json",
            ],
        ] {
            let cli = parse_clean(args).checked().unwrap();
            assert!(cli.json, "{args:?}");
            assert_eq!(cli.connection.endpoint.to_string(), "http://127.0.0.1:1234");
            assert_eq!(cli.connection.token.as_deref(), Some("t0k"));
            assert!(matches!(cli.command, Command::Sites(SitesCommand::List(_))));
        }
        let cli = parse_clean(&[
            "-v",
            "--endpoint",
            AWS_API,
            "--profile",
            "prod",
            "deployments",
            "docs",
        ]);
        assert_eq!(cli.verbose, 1);
        assert_eq!(
            cli.connection.auth().unwrap(),
            ApiAuth::SigV4 {
                profile: Some("prod"),
                region: None
            }
        );
    }

    #[test]
    fn timeouts_take_seconds_minutes_hours_or_plain_seconds() {
        for (raw, secs, shown) in [
            ("90s", 90, "90s"),
            ("10m", 600, "10m"),
            ("1h", 3600, "1h"),
            ("45", 45, "45s"),
            ("120s", 120, "2m"),
        ] {
            let timeout: WaitTimeout = raw.parse().unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(timeout.duration(), Duration::from_secs(secs), "{raw}");
            assert_eq!(timeout.to_string(), shown, "{raw}");
        }
        assert_eq!(WaitTimeout::DEFAULT.to_string(), "30m");
        for bad in ["", "m", "10 m", "1.5h", "-5", "10d", "5ms", "1h30m"] {
            assert!(
                matches!(bad.parse::<WaitTimeout>(), Err(WaitTimeoutError::Syntax(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            "0s".parse::<WaitTimeout>(),
            Err(WaitTimeoutError::Zero)
        ));
        assert!(matches!(
            "99999999999999999999h".parse::<WaitTimeout>(),
            Err(WaitTimeoutError::TooLong(_))
        ));
        assert!(matches!(
            "9999999999999999h".parse::<WaitTimeout>(),
            Err(WaitTimeoutError::TooLong(_))
        ));
    }

    #[test]
    fn routing_flags_say_what_the_router_does() {
        use clap::CommandFactory;
        let mut command = Cli::command();
        let create = command
            .find_subcommand_mut("sites")
            .and_then(|sites| sites.find_subcommand_mut("create"))
            .expect("sites create");
        let help = create.render_long_help().to_string();
        assert!(
            help.contains("every path without a file extension serves /index.html"),
            "{help}"
        );
        assert!(help.contains("`/about` serves `/about.html`"), "{help}");
        assert!(
            help.contains("`/about/` serves `/about/index.html`"),
            "{help}"
        );
    }

    #[test]
    fn json_and_verbosity_are_accepted_anywhere() {
        let cli = parse_clean(&["-vv", "deployments", "docs", "--json"]);
        assert!(cli.json);
        assert_eq!(cli.verbose, 2);
        assert_eq!(cli.command.default_log_level(), "warn");
        assert_eq!(parse_clean(&["dev"]).command.default_log_level(), "info");
    }

    #[test]
    fn the_command_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
