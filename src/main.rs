//! The `conmutador` command line: parses arguments and calls the library.
//! Nothing else lives here.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use conmutador::config::{Config, Overrides, PortRange};
use conmutador::ops::logging::LogFormat;
use conmutador::ops::records::{ExportFormat, RecordKind};

#[derive(Parser)]
#[command(
    name = "conmutador",
    version,
    about = "SIP gateway and call router for a consular call center"
)]
struct Cli {
    /// Configuration file (default: ./conmutador.toml, else the embedded default).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway until SIGINT or SIGTERM; SIGHUP reloads the dialplans and the TLS certificate.
    Run {
        /// SIP listen address (UDP and TCP); repeat for several.
        #[arg(long = "sip-listen")]
        sip_listen: Vec<SocketAddr>,
        /// HTTP listen address for /metrics, /healthz and the admin API.
        #[arg(long = "http-listen")]
        http_listen: Option<SocketAddr>,
        /// RTP port range, LOW-HIGH.
        #[arg(long = "rtp-ports")]
        rtp_ports: Option<PortRange>,
        /// Dialplan folder.
        #[arg(long)]
        dialplans: Option<PathBuf>,
        /// Folder for call records.
        #[arg(long = "data-dir")]
        data_dir: Option<PathBuf>,
        /// Log format.
        #[arg(long = "log-format", value_enum)]
        log_format: Option<LogFormat>,
    },
    /// Validate the dialplans (and run their journey tests); non-zero exit on errors.
    Check {
        /// Dialplan folder (default: the configured one).
        dir: Option<PathBuf>,
    },
    /// Walk a plan without telephony and print the journey.
    Simulate {
        /// Dialplan folder (default: the configured one).
        dir: Option<PathBuf>,
        /// Called number.
        #[arg(long, default_value = "")]
        number: String,
        /// Digits pressed, comma-separated; "-" lets a prompt time out.
        #[arg(long, value_delimiter = ',')]
        press: Vec<String>,
        /// Wall-clock time of the call in the plan's zone, "YYYY-MM-DD HH:MM".
        #[arg(long)]
        at: Option<String>,
    },
    /// Call records.
    Records {
        #[command(subcommand)]
        command: RecordsCommand,
    },
}

#[derive(Subcommand)]
enum RecordsCommand {
    /// Export call records and queue events.
    Export {
        /// Start of the window, RFC 3339 or "YYYY-MM-DD".
        #[arg(long)]
        since: String,
        #[arg(long, value_enum, default_value = "csv")]
        format: ExportFormat,
        /// Which records.
        #[arg(long, value_enum, default_value = "cdr")]
        kind: RecordKind,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut cfg = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("conmutador: {e:#}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Run {
            sip_listen,
            http_listen,
            rtp_ports,
            dialplans,
            data_dir,
            log_format,
        } => {
            let o = Overrides {
                sip_listen,
                http_listen,
                rtp_ports,
                dialplans,
                data_dir,
                log_format,
            };
            if let Err(e) = cfg.apply(&o) {
                eprintln!("conmutador: {e:#}");
                return ExitCode::from(2);
            }
            if let Err(e) =
                conmutador::ops::logging::init_logging(cfg.log.format, Some(&cfg.log.level))
            {
                eprintln!("conmutador: {e}");
                return ExitCode::from(2);
            }
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("conmutador: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(conmutador::call::gateway::run(cfg)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("conmutador: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Check { dir } => {
            let dir = dir.unwrap_or_else(|| cfg.dialplan_dir());
            let ok = conmutador::dialplan::check_command(
                &dir,
                &cfg.queue_names(),
                &mut std::io::stdout(),
            );
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Simulate {
            dir,
            number,
            press,
            at,
        } => {
            let dir = dir.unwrap_or_else(|| cfg.dialplan_dir());
            let at = match at
                .as_deref()
                .map(conmutador::dialplan::parse_at)
                .transpose()
            {
                Ok(at) => at,
                Err(e) => {
                    eprintln!("conmutador: {e:#}");
                    return ExitCode::from(2);
                }
            };
            match conmutador::dialplan::simulate_command(
                &dir,
                &cfg.queue_names(),
                &number,
                &press,
                at,
                &mut std::io::stdout(),
            ) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("conmutador: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Records {
            command:
                RecordsCommand::Export {
                    since,
                    format,
                    kind,
                },
        } => {
            let since = match parse_since(&since) {
                Some(t) => t,
                None => {
                    eprintln!("conmutador: --since takes RFC 3339 or YYYY-MM-DD, not {since:?}");
                    return ExitCode::from(2);
                }
            };
            let mut out = std::io::stdout().lock();
            match conmutador::ops::records::export(&cfg.records(), kind, since, format, &mut out) {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("conmutador: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// `--since`: an RFC 3339 instant, or a date taken as midnight UTC.
fn parse_since(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&chrono::Utc));
    }
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    Some(d.and_hms_opt(0, 0, 0)?.and_utc())
}
