//! The `siemcast` command line: parses arguments and calls into the library.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{CommandFactory as _, Parser, Subcommand, ValueEnum};

use siemcast::config::{Config, DestinationConfig, SyslogFormat, DEFAULT_CONFIG_PATH};
use siemcast::destinations::route::Route;
use siemcast::mapping::{Mapping, MappingSet};

/// Brings Microsoft cloud security events into your SIEM as CEF or LEEF over syslog.
///
/// siemcast reads events (Azure Activity, Defender for Cloud, Graph Security, Entra ID,
/// Office 365, or files of them), renders each one through a mapping file you can edit, and
/// delivers it over TCP or UDP syslog with an on-disk spool, so that a SIEM outage or a
/// restart loses nothing.
///
/// Start with `siemcast demo` to see it work end to end on this machine, then write a config
/// and validate it with `siemcast check -c siemcast.toml`.
#[derive(Debug, Parser)]
#[command(name = "siemcast", version, propagate_version = true)]
struct Cli {
    /// Log filter, e.g. `info`, `debug`, `siemcast=debug` (default from RUST_LOG, else info).
    #[arg(long, global = true, value_name = "FILTER")]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service: poll the sources and deliver to the destinations until stopped.
    ///
    /// Stops cleanly on SIGTERM or Ctrl-C: sources finish the page in hand, destinations wait
    /// for the SIEM to acknowledge what was sent, checkpoints and cursors are saved. SIGHUP
    /// reloads the config and mappings (an invalid new set is refused; the old one runs on).
    /// Serves /metrics, /healthz and /spool on [metrics] address (default 127.0.0.1:9464).
    ///
    /// Exit status: 0 after a clean stop; 1 when the config is invalid (every problem is
    /// printed) or a component failed (the log says which).
    ///
    /// Example:
    ///   siemcast run -c /etc/siemcast/siemcast.toml
    #[command(verbatim_doc_comment)]
    Run(ConfigArg),
    /// Validate the config and every mapping it uses, then print a summary.
    ///
    /// Reads every file the config names (mappings, TLS certificates and keys, the client
    /// secret) but connects to nothing. Run it after each edit; the systemd unit runs it
    /// before every start. The summary says, per destination, what it takes (its route:
    /// `sources = [...]` names sources, `kinds = [...]` names event kinds as the mapping
    /// files are named, or a prefix such as "eventhubs_*") and the syslog hostname (and
    /// app_name with rfc5424) each source's events arrive under: the QRadar Log Source
    /// Identifier or ArcSight device host name to configure. It also lists each destination's
    /// filter rules (from [[destination.rule]] and its rules_file) in the order they are tried;
    /// a bad rule (unknown key, source or kind, invalid glob or regex) is a located error.
    ///
    /// Exit status: 0 when everything is valid; 1 otherwise, with every problem printed as
    /// `FILE:LINE:COL: message`.
    ///
    /// Example:
    ///   siemcast check -c /etc/siemcast/siemcast.toml
    #[command(verbatim_doc_comment)]
    Check(ConfigArg),
    /// Render saved events with a mapping file, to preview what the SIEM will receive.
    ///
    /// Input: NDJSON, a JSON array, or an object whose `value` or `records` is an array (what
    /// Microsoft's APIs return). One rendered message per event is written to stdout; a bad
    /// event is reported on stderr with its index and the others are still rendered.
    ///
    /// The preview is the sender: each event is rendered, given its syslog header, cut to
    /// max_message_bytes (64 KiB) and framed by the same code as a destination whose settings
    /// other than `syslog` are the defaults (this host's name, facility local4, APP-NAME
    /// siemcast, LF framing), so stdout is byte for byte what it sends, send time aside.
    ///
    /// With --as eventhubs the input is Event Hubs message bodies ({"records":[...]}, one per
    /// line or document): each record is routed to its kind, given its id and `_siemcast`
    /// stamp exactly as the `eventhubs` source does, and rendered with --mappings DIR/<kind>.toml;
    /// stderr ends with how many records went to each kind.
    ///
    /// Exit status: 0 when every event was rendered; 1 when the mapping is invalid or any
    /// event could not be rendered.
    ///
    /// Example:
    ///   siemcast render --mapping mappings/arcsight/azure_activity.toml --input events.json
    ///   siemcast render --mappings mappings/qradar --as eventhubs --input messages.ndjson --syslog rfc3164
    #[command(verbatim_doc_comment)]
    Render(RenderArgs),
    /// Run a self-contained demonstration on this machine, with no credentials or network.
    ///
    /// Starts the built-in simulator of Microsoft's APIs (Entra tokens, Azure Activity,
    /// Graph alerts, Entra audit and sign-in logs; it throttles some requests) and a syslog
    /// listener on loopback, runs the real pipeline (API pollers -> spool -> CEF mappings ->
    /// RFC 3164 over TCP), then prints what the listener received and a summary.
    ///
    /// Exit status: 0 when every simulated event arrived; 1 otherwise.
    ///
    /// Example:
    ///   siemcast demo
    #[command(verbatim_doc_comment)]
    Demo,
    /// Send one test event through each destination (or the named one) and report the result.
    ///
    /// The event is a bundled sample whose id, time and name fields say "siemcast send-test",
    /// rendered with the destination's real mapping, syslog header and framing, and sent over
    /// its real transport. TCP and TLS wait until the receiver's kernel acknowledged the bytes;
    /// UDP has no acknowledgement. Prints the message as sent, or the exact failure (DNS,
    /// connect, TLS handshake, mapping). Safe while the service runs: it uses its own
    /// connection and does not touch the spool.
    ///
    /// Exit status: 0 when every destination tried took the event; 1 if any failed or the
    /// config is invalid.
    ///
    /// Example:
    ///   siemcast send-test -c /etc/siemcast/siemcast.toml --destination arcsight
    #[command(verbatim_doc_comment)]
    SendTest(SendTestArgs),
    /// List the subscriptions each discovering source would collect now.
    ///
    /// For every source with subscriptions = ["*"] or management_groups (or only --source
    /// NAME): reads ARM's subscription list and the management groups' descendants with the
    /// source's own credentials, rate limit and proxy, as the service does at each
    /// discovery_interval, and prints each subscription's id, state and name, and whether it
    /// is collected or why it is skipped (a state other than Enabled, Warned or PastDue; below a
    /// management group but not readable). Changes nothing; safe while the service runs.
    ///
    /// Exit status: 0 when every source asked for was listed; 1 when the config is invalid,
    /// no source discovers (or --source names none that does), or a listing failed (the
    /// reason is printed).
    ///
    /// Example:
    ///   siemcast discover -c /etc/siemcast/siemcast.toml --source activity
    #[command(verbatim_doc_comment)]
    Discover(DiscoverArgs),
    /// Backfill a past time window of one API source into the destinations.
    ///
    /// Reads [--from, --to] of the named source (any API source that reads in time windows,
    /// o365_management and storage_archive; the kinds that list current states, such as defender_alerts, have
    /// no time window, and replay names the kinds it takes) with a progress
    /// bar (plain lines when stderr is not a terminal) and delivers it to every configured
    /// destination. An o365_management source starts its subscriptions, lists content per
    /// content type a day at a time (reaching its overlap past --to, for blobs created late)
    /// and keeps the records whose CreationTime is in the window. A source with
    /// subscriptions = ["*"] or management_groups lists its subscriptions once, as
    /// `siemcast discover` does, and replays each one collected. It can run while the service runs: it
    /// keeps its own spool and checkpoint in STATE_DIR/replay/SOURCE, and exits 0 once every
    /// destination has acknowledged every event it read.
    ///
    /// Dedupe: events are deduplicated on the source's ids; the ids earlier replays of this
    /// source delivered are remembered, so replaying an overlapping window sends only what was
    /// not sent by a replay before (--fresh forgets them, to send again to a SIEM that lost
    /// data). A replay does not know what the service itself delivered: replay windows the
    /// service did not read (before its start_at, or older than an outage), or that the SIEM
    /// lost. Ctrl-C keeps what was read; the same command again finishes the delivery.
    ///
    /// TIME is an RFC 3339 time (2026-11-01T00:00:00Z), a duration back from now (7d, 90m) or
    /// `now`. The window must lie within what the API keeps (Activity Log 90 days, Entra logs
    /// 30 days, Graph alerts 180 days, Office 365 content 7 days).
    ///
    /// Exit status: 0 when every event of the window was acknowledged by every destination;
    /// 1 when the config, the source or the window is invalid, or reading or delivery failed
    /// (the reason is printed); 130 after Ctrl-C.
    ///
    /// Example:
    ///   siemcast replay -c /etc/siemcast/siemcast.toml --source activity --from 7d --to 6d
    #[command(verbatim_doc_comment)]
    Replay(ReplayArgs),
    /// Inspect or maintain the durable spool.
    ///
    /// Commands: `status` (how far each destination is behind) and `forget-destination`
    /// (release the data kept for a destination removed from the config).
    ///
    /// Example:
    ///   siemcast spool status -c /etc/siemcast/siemcast.toml
    #[command(verbatim_doc_comment, subcommand)]
    Spool(SpoolCommand),
    /// Show what a destination would send of a file of a source's events, and what its
    /// filter rules would drop, before deploying them.
    ///
    /// Each event of --input is decided by the destination's own code, as `siemcast run`
    /// would at send time: its route (`sources`, `kinds`), its filter rules (first match
    /// wins; sampling by record id, as in the service), its mapping, syslog header and
    /// framing. Prints one line per event (`INDEX ID KIND: sent (N bytes)`, `dropped by rule
    /// "NAME" (...)`, `sampled out ...`, `outside the route`), then the totals: events and
    /// bytes kept and filtered, with each rule's share (the licence saving). A filtered event
    /// is rendered anyway to count the bytes it saves. Input is what the source reads: for an
    /// `eventhubs` source, Event Hubs message bodies ({"records":[...]}); otherwise NDJSON, a
    /// JSON array, or an object whose `value` or `records` is an array. Nothing is sent.
    ///
    /// Exit status: 0 when every event was decided; 1 when the config is invalid, a name is
    /// unknown, or an event could not be read or rendered (it is reported; the rest are
    /// still decided).
    ///
    /// Example:
    ///   siemcast dry-run -c /etc/siemcast/siemcast.toml --destination qradar --source activity --input activity.json
    #[command(verbatim_doc_comment)]
    DryRun(DryRunArgs),
    /// Inspect mapping files.
    ///
    /// Commands: `keys` (the keys each mapping file sends, and which need a custom property
    /// in the SIEM).
    ///
    /// Example:
    ///   siemcast mappings keys /usr/share/siemcast/mappings/qradar --custom
    #[command(verbatim_doc_comment, subcommand)]
    Mappings(MappingsCommand),
    /// Print the manual page siemcast(1) (roff) to stdout; `man -l -` shows it.
    #[command(hide = true)]
    Man,
}

#[derive(Debug, clap::Args)]
struct DryRunArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The [[destination]] whose route and rules decide.
    #[arg(long, value_name = "NAME")]
    destination: String,
    /// The [[source]] the events come from (its name and kind are what the rules see).
    #[arg(long, value_name = "NAME")]
    source: String,
    /// Events to decide on; stdin when absent.
    #[arg(long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// Print only the totals, not a line per event.
    #[arg(long)]
    totals: bool,
}

#[derive(Debug, Subcommand)]
enum MappingsCommand {
    /// List the extension keys each mapping file sends: key, custom or not, label, conversion
    /// and the JSON paths of the event it is read from.
    ///
    /// A key marked `custom` is in neither the ArcSight CEF dictionary nor IBM's predefined
    /// LEEF attributes: QRadar shows it only through a custom event property (extraction by
    /// LEEF key, one per key and log source type), ArcSight keeps it in the event's additional
    /// data. With --custom only those keys are listed: the properties to create.
    ///
    /// Exit status: 0 when every file is a valid mapping; 1 otherwise (each problem printed as
    /// `FILE:LINE:COL: message`).
    ///
    /// Example:
    ///   siemcast mappings keys /usr/share/siemcast/mappings/qradar --custom
    ///   siemcast mappings keys mappings/arcsight/entra_signins.toml
    #[command(verbatim_doc_comment)]
    Keys(KeysArgs),
}

#[derive(Debug, clap::Args)]
struct KeysArgs {
    /// Mapping files, or folders whose `*.toml` files are read (in name order).
    #[arg(value_name = "PATH", required = true)]
    paths: Vec<PathBuf>,
    /// Only the custom keys (those that need a custom property in the SIEM).
    #[arg(long)]
    custom: bool,
}

#[derive(Debug, Subcommand)]
enum SpoolCommand {
    /// Per destination: events queued, their bytes on disk and the age of the oldest.
    ///
    /// When `siemcast run` holds the spool, the figures come from its metrics listener
    /// (`GET /spool` on [metrics] address). Destinations that have a cursor but are no longer
    /// in the config are pointed out: they keep data on disk until forgotten.
    ///
    /// Exit status: 0 (also when there is no spool yet); 1 when the config is invalid or the
    /// spool cannot be read.
    ///
    /// Example:
    ///   siemcast spool status -c /etc/siemcast/siemcast.toml --json
    #[command(verbatim_doc_comment)]
    Status(SpoolStatusArgs),
    /// Release the cursor of a destination removed from the config, so it no longer keeps
    /// delivered data on disk.
    ///
    /// Refuses while the destination is still configured, and while the service runs (a
    /// reload, `systemctl reload siemcast`, releases removed destinations by itself).
    ///
    /// Exit status: 0 when the cursor was released; 1 when the destination is still
    /// configured, the service holds the spool, or the spool has no such cursor.
    ///
    /// Example:
    ///   siemcast spool forget-destination old-qradar -c /etc/siemcast/siemcast.toml
    #[command(verbatim_doc_comment)]
    ForgetDestination(ForgetArgs),
}

#[derive(Debug, clap::Args)]
struct DiscoverArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Only this source (default: every source that discovers its subscriptions).
    #[arg(long, value_name = "NAME")]
    source: Option<String>,
}

#[derive(Debug, clap::Args)]
struct SendTestArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Only this destination (default: every destination).
    #[arg(long, value_name = "NAME")]
    destination: Option<String>,
    /// Seconds to wait for the connection and for the acknowledgement.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    timeout: u64,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct ReplayArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The `[[source]]` to replay, by name.
    #[arg(long, value_name = "NAME")]
    source: String,
    /// Start of the window (RFC 3339 time, duration back such as 7d, or now).
    #[arg(long, value_name = "TIME")]
    from: String,
    /// End of the window (RFC 3339 time, duration back such as 1h, or now).
    #[arg(long, value_name = "TIME")]
    to: String,
    /// Forget which events earlier replays of this source delivered, and send them again.
    #[arg(long)]
    fresh: bool,
}

#[derive(Debug, clap::Args)]
struct SpoolStatusArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct ForgetArgs {
    /// The destination's name, as it was in the config.
    name: String,
    #[command(flatten)]
    config: ConfigArg,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct ConfigArg {
    /// Configuration file.
    #[arg(short, long, value_name = "FILE", env = "SIEMCAST_CONFIG", default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
}

#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("mappings_arg").required(true).args(["mapping", "mappings"]))]
struct RenderArgs {
    /// Mapping file, e.g. mappings/arcsight/azure_activity.toml: renders every event.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["mappings", "kind"])]
    mapping: Option<PathBuf>,
    /// Mappings folder (a destination's `mappings`, e.g. mappings/qradar): each event is
    /// rendered with `DIR/<kind>.toml`, its kind given by --kind or, with --as eventhubs, by the
    /// record's routing.
    #[arg(long, value_name = "DIR")]
    mappings: Option<PathBuf>,
    /// The kind of the events, picking `DIR/<KIND>.toml` from --mappings (as a `files`
    /// source's source_kind does), e.g. azure_activity.
    #[arg(long, value_name = "KIND", conflicts_with = "as_")]
    kind: Option<String>,
    /// What the input holds: `records` (events of one kind, as a `files` source reads them) or
    /// `eventhubs` (Event Hubs message bodies, {"records":[...]} per line or document: each record
    /// is routed to its kind and stamped with `_siemcast` id, topic, partition, offset and
    /// index exactly as the `eventhubs` source does; needs --mappings).
    #[arg(long = "as", id = "as_", value_enum, value_name = "INPUT", default_value_t = InputArg::Records)]
    as_: InputArg,
    /// With --as eventhubs: the topic (event hub) the messages are stamped as read from.
    #[arg(long, value_name = "NAME", default_value = "render")]
    topic: String,
    /// With --as eventhubs: the partition they are stamped with.
    #[arg(long, value_name = "N", default_value_t = 0)]
    partition: i32,
    /// With --as eventhubs: the offset of the first message; each next message is one more.
    /// Records without an id of their own get one hashed from topic, partition, offset and
    /// index, as in the stream: give the real coordinates to preview the ids sent.
    #[arg(long, value_name = "N", default_value_t = 0)]
    offset: i64,
    /// Events to render; stdin when absent.
    #[arg(long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// Syslog header to put before each payload.
    #[arg(long, value_enum, default_value_t = SyslogArg::None)]
    syslog: SyslogArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum InputArg {
    /// Events of one kind: NDJSON, a JSON array, or an object whose `value` or `records` is
    /// an array.
    Records,
    /// Event Hubs message bodies, routed per record as the `eventhubs` source does.
    Eventhubs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SyslogArg {
    None,
    Rfc5424,
    Rfc3164,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo prints its own story; its logs stay quiet unless asked for.
    let quiet = matches!(cli.command, Command::Demo).then_some("warn");
    init_logging(cli.log_level.as_deref().or(quiet));
    let result = match cli.command {
        Command::Run(args) => run(&args.config),
        Command::Check(args) => check(&args.config),
        Command::Render(args) => render(&args),
        Command::Demo => runtime().and_then(|rt| rt.block_on(siemcast::demo::run())),
        Command::Man => man(),
        Command::Mappings(MappingsCommand::Keys(args)) => mapping_keys(&args),
        Command::DryRun(args) => dry_run(&args),
        Command::SendTest(args) => send_test(&args),
        Command::Replay(args) => replay(&args),
        Command::Discover(args) => discover(&args),
        Command::Spool(SpoolCommand::Status(args)) => with_config(&args.config.config, |c| {
            siemcast::ops::spool_status(c, args.json)
        }),
        Command::Spool(SpoolCommand::ForgetDestination(args)) => {
            with_config(&args.config.config, |c| {
                siemcast::ops::forget_destination(c, &args.config.config, &args.name, args.json)
            })
        }
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to journald with structured fields when stderr is connected to the journal
/// (`JOURNAL_STREAM` names it, as systemd sets it for services), otherwise plain lines on stderr.
fn init_logging(level: Option<&str>) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(l) => EnvFilter::new(l),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    if stderr_is_journal() {
        if let Ok(journald) = tracing_journald::layer() {
            let journald = journald
                .with_syslog_identifier("siemcast".to_owned())
                .with_field_prefix(None);
            tracing_subscriber::registry()
                .with(filter)
                .with(journald)
                .init();
            return;
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

/// Whether stderr is the journal stream systemd described in `JOURNAL_STREAM` (`DEV:INODE`).
fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd as _;
    use std::os::unix::fs::MetadataExt as _;
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let meta = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map(std::fs::File::from)
        .and_then(|f| f.metadata());
    match (meta, dev.parse::<u64>(), ino.parse::<u64>()) {
        (Ok(m), Ok(dev), Ok(ino)) => m.dev() == dev && m.ino() == ino,
        _ => false,
    }
}

fn man() -> anyhow::Result<ExitCode> {
    let page = siemcast::manpage::render(Cli::command()).context("cannot render the manual")?;
    std::io::stdout()
        .write_all(&page)
        .context("cannot write to stdout")?;
    Ok(ExitCode::SUCCESS)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn load_config(path: &Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|errors| {
        eprintln!("{errors}");
        eprintln!(
            "{} problem{} in {}",
            errors.0.len(),
            if errors.0.len() == 1 { "" } else { "s" },
            path.display()
        );
        ExitCode::FAILURE
    })
}

fn run(path: &Path) -> anyhow::Result<ExitCode> {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let rt = runtime()?;
    rt.block_on(siemcast::service::run(path, config))?;
    tracing::info!(message = "siemcast stopped.");
    Ok(ExitCode::SUCCESS)
}

fn with_config(path: &Path, f: impl FnOnce(&Config) -> ExitCode) -> anyhow::Result<ExitCode> {
    Ok(match load_config(path) {
        Ok(c) => f(&c),
        Err(code) => code,
    })
}

fn discover(args: &DiscoverArgs) -> anyhow::Result<ExitCode> {
    let config = match load_config(&args.config.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let rt = runtime()?;
    let (text, result) = rt.block_on(siemcast::ops::discover(&config, args.source.as_deref()));
    print!("{text}");
    Ok(match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    })
}

fn send_test(args: &SendTestArgs) -> anyhow::Result<ExitCode> {
    let config = match load_config(&args.config.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let timeout = std::time::Duration::from_secs(args.timeout.max(1));
    let rt = runtime()?;
    Ok(rt.block_on(siemcast::ops::send_test(
        &config,
        args.destination.as_deref(),
        timeout,
        args.json,
    )))
}

fn replay(args: &ReplayArgs) -> anyhow::Result<ExitCode> {
    use siemcast::replay::{Outcome, ReplayOptions};
    let config = match load_config(&args.config.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let opts = ReplayOptions {
        source: args.source.clone(),
        from: args.from.clone(),
        to: args.to.clone(),
        fresh: args.fresh,
    };
    let rt = runtime()?;
    rt.block_on(async {
        let cancel = tokio_util::sync::CancellationToken::new();
        let on_signal = cancel.clone();
        tokio::spawn(async move {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            on_signal.cancel();
        });
        match siemcast::replay::run(&config, &opts, cancel).await? {
            Outcome::Delivered {
                windows,
                new_events,
            } => {
                println!(
                    "replay {}: {windows} window{} read, {new_events} new event{} delivered and acknowledged by every destination",
                    opts.source,
                    if windows == 1 { "" } else { "s" },
                    if new_events == 1 { "" } else { "s" },
                );
                Ok(ExitCode::SUCCESS)
            }
            Outcome::Interrupted { new_events } => {
                eprintln!(
                    "replay {}: interrupted after {new_events} new events; what was read is kept in {}: run the same command again to finish",
                    opts.source,
                    siemcast::replay::spool_dir(&config, &opts.source).display()
                );
                Ok(ExitCode::from(130))
            }
        }
    })
}

fn check(path: &Path) -> anyhow::Result<ExitCode> {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    println!("{}: OK", path.display());
    println!(
        "  state_dir: {}",
        config.resolve(&config.state_dir).display()
    );
    for s in &config.sources {
        let kind = s.kind.map(|k| k.to_string()).unwrap_or_default();
        match s.event_kind() {
            Some(ev) if kind != ev.as_str() => {
                println!("  source \"{}\": {} of {} events", s.name, kind, ev)
            }
            _ if s.kind == Some(siemcast::config::SourceKind::StorageArchive) => {
                if let Ok(spec) = siemcast::sources::spec::ArchiveSpec::of(s, &config) {
                    let auth = match &spec.sas_token_file {
                        Some(f) => format!("SAS from {}", f.display()),
                        None => "the [azure] identity (token for https://storage.azure.com)".into(),
                    };
                    println!(
                        "  source \"{}\": {kind} of {}, containers {}{}; {auth}",
                        s.name,
                        spec.endpoint,
                        spec.containers.join(", "),
                        if spec.prefix.is_empty() {
                            String::new()
                        } else {
                            format!(" below {}", spec.prefix)
                        },
                    );
                }
            }
            _ => println!("  source \"{}\": {}", s.name, kind),
        }
        if let Some(d) = siemcast::sources::discovery::Discovery::of(s) {
            println!(
                "    {} (siemcast discover -c FILE lists them; check stays offline)",
                d.describe()
            );
        }
    }
    siemcast::ops::print_azure_summary(&config);
    for d in &config.destinations {
        if d.transport == siemcast::config::Transport::Hec {
            print_hec_summary(d, &config);
            continue;
        }
        let body = match d.output {
            siemcast::config::Output::Json => "output json (the source records)".to_owned(),
            siemcast::config::Output::Mappings => {
                format!("mappings {}", config.resolve(&d.mappings).display())
            }
        };
        println!(
            "  destination \"{}\": {} {} ({}, {} framing), {body}",
            d.name, d.transport, d.address, d.syslog, d.framing,
        );
        let route = Route::from_config(d);
        println!("    takes {}", route.describe(&config));
        println!("    {}", d.filter.describe());
        print_identities(d, &route, &config);
        let kinds = route.event_kinds(&config);
        let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        let loaded = (d.output == siemcast::config::Output::Mappings)
            .then(|| MappingSet::load(&config.resolve(&d.mappings), &kinds));
        if let Some(Ok(set)) = loaded {
            for (kind, stand_in) in set.stand_ins() {
                println!(
                    "    note: no {kind}.toml there: those records are rendered with {stand_in}.toml; copy {kind}.toml from the mappings shipped with this release (/usr/share/siemcast/mappings)"
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A HEC destination: where, how acknowledged, the token file and each kind's sourcetype.
fn print_hec_summary(d: &DestinationConfig, config: &Config) {
    let ack = match d.ack {
        Some(false) => "off (a 200 answer counts)",
        Some(true) => "required",
        None => "indexer acknowledgement when the token has it",
    };
    println!(
        "  destination \"{}\": hec {}, ack {ack}, gzip {}, batches of {} events / {} bytes, {} requests in flight, ack_timeout {}s",
        d.name,
        d.url.as_deref().unwrap_or_default(),
        if d.hec_gzip() { "on" } else { "off" },
        d.hec_batch_events(),
        d.hec_batch_bytes(),
        d.hec_max_in_flight(),
        d.ack_timeout().as_secs(),
    );
    if let Some(file) = &d.token_file {
        println!(
            "    token_file {} (readable)",
            config.resolve(file).display()
        );
    }
    println!(
        "    index {}, host {}, source {}",
        d.index.as_deref().unwrap_or("(the token's default)"),
        d.host
            .clone()
            .unwrap_or_else(siemcast::config::local_hostname),
        d.source.as_deref().unwrap_or("(each [[source]]'s name)"),
    );
    let route = Route::from_config(d);
    println!("    takes {}", route.describe(config));
    println!("    {}", d.filter.describe());
    for kind in route.event_kinds(config) {
        let how = if d.sourcetypes.contains_key(kind.as_str()) {
            "set in [destination.sourcetypes]"
        } else {
            "default, see docs/splunk.md"
        };
        println!("    sourcetype {} for {kind} ({how})", d.sourcetype(kind));
    }
}

/// The syslog HOSTNAME (and APP-NAME for RFC 5424) each source's events arrive under: what a
/// SIEM admin enters as the log source identifier (QRadar) or device host name (ArcSight).
fn print_identities(d: &DestinationConfig, route: &Route, config: &Config) {
    use siemcast::destinations::identity::Identities;
    if d.syslog == SyslogFormat::None {
        return;
    }
    let ids = Identities::build(d, config, |s, k| route.takes(s, k), |_| Box::default());
    for (source, kinds) in ids.describe() {
        let mut shown: Vec<(String, Vec<&str>)> = Vec::new();
        for (kind, id) in kinds {
            let text = match d.syslog {
                SyslogFormat::Rfc5424 => {
                    format!("hostname {}, app_name {}", id.hostname, id.app_name)
                }
                _ => format!("hostname {}", id.hostname),
            };
            match shown.iter_mut().find(|(t, _)| *t == text) {
                Some((_, ks)) => ks.push(kind.as_str()),
                None => shown.push((text, vec![kind.as_str()])),
            }
        }
        let several = shown.len() > 1 || shown.iter().any(|(_, ks)| ks.len() > 1);
        for (text, ks) in shown {
            if several {
                println!("    source \"{source}\" ({}): {text}", ks.join(", "));
            } else {
                println!("    source \"{source}\": {text}");
            }
        }
    }
}

/// The whole of `path`, or of stdin when there is none.
fn read_input(path: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    match path {
        Some(p) => std::fs::read(p).with_context(|| format!("cannot read {}", p.display())),
        None => {
            let mut input = Vec::new();
            std::io::stdin()
                .read_to_end(&mut input)
                .context("cannot read stdin")?;
            Ok(input)
        }
    }
}

fn dry_run(args: &DryRunArgs) -> anyhow::Result<ExitCode> {
    let config = match load_config(&args.config.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let dry = siemcast::dry_run::DryRun::new(&config, &args.destination, &args.source)?;
    let input = read_input(args.input.as_deref())?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut written = Ok(());
    let totals = dry.run(&input, &mut |line| {
        if !args.totals && written.is_ok() {
            written = writeln!(out, "{line}");
        }
    });
    written?;
    if !args.totals {
        writeln!(out)?;
    }
    out.write_all(totals.report().as_bytes())?;
    out.flush()?;
    Ok(if totals.failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn mapping_keys(args: &KeysArgs) -> anyhow::Result<ExitCode> {
    let mut files = Vec::new();
    for path in &args.paths {
        if path.is_dir() {
            let mut inside: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("cannot read the folder {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            inside.sort();
            if inside.is_empty() {
                anyhow::bail!("{} holds no mapping files (*.toml)", path.display());
            }
            files.extend(inside);
        } else {
            files.push(path.clone());
        }
    }
    let mut out = String::new();
    let mut failed = false;
    for file in &files {
        match Mapping::load(file) {
            Ok(m) => {
                let table = m.keys_table(args.custom);
                let rows = table.lines().count().saturating_sub(1);
                let what = if args.custom { "custom keys" } else { "keys" };
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(&format!(
                    "# {} ({}): {rows} {what}\n",
                    file.display(),
                    m.format_name()
                ));
                if rows > 0 {
                    out.push_str(&table);
                }
            }
            Err(errors) => {
                eprintln!("{errors}");
                failed = true;
            }
        }
    }
    std::io::stdout().write_all(out.as_bytes())?;
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn render(args: &RenderArgs) -> anyhow::Result<ExitCode> {
    use siemcast::preview::{InputShape, Mappings, Preview};
    let eventhubs = args.as_ == InputArg::Eventhubs;
    let loaded = match (&args.mapping, &args.mappings) {
        (Some(file), _) if eventhubs => {
            anyhow::bail!(
                "--as eventhubs routes each record to its own kind: give the mappings folder with --mappings DIR (it reads <kind>.toml for each kind), not --mapping {}",
                file.display()
            )
        }
        (Some(file), _) => Mapping::load(file).map(Mappings::One),
        (None, Some(dir)) if eventhubs => {
            // Every kind the `eventhubs` source routes to, as a destination loads them.
            let kinds: Vec<&str> = siemcast::event::EventKind::STREAMED
                .iter()
                .map(|k| k.as_str())
                .collect();
            MappingSet::load(dir, &kinds).map(Mappings::ByKind)
        }
        (None, Some(dir)) => {
            let Some(kind) = &args.kind else {
                anyhow::bail!(
                    "--mappings {} needs --kind KIND to pick <KIND>.toml (or --as eventhubs to route each record)",
                    dir.display()
                )
            };
            MappingSet::load(dir, &[kind]).map(Mappings::ByKind)
        }
        (None, None) => anyhow::bail!("give --mapping FILE or --mappings DIR"),
    };
    let mappings = match loaded {
        Ok(m) => m,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let shape = if eventhubs {
        InputShape::EventHubs {
            topic: args.topic.clone(),
            partition: args.partition,
            offset: args.offset,
        }
    } else {
        InputShape::Records {
            kind: args.kind.clone(),
        }
    };
    let format = match args.syslog {
        SyslogArg::None => SyslogFormat::None,
        SyslogArg::Rfc5424 => SyslogFormat::Rfc5424,
        SyslogArg::Rfc3164 => SyslogFormat::Rfc3164,
    };
    let input = read_input(args.input.as_deref())?;
    let preview = Preview::new(mappings, shape, format);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let stderr = std::io::stderr();
    let mut err = std::io::BufWriter::new(stderr.lock());
    let summary = preview
        .run(&input, &mut out, &mut |line| {
            let _ = writeln!(err, "{line}");
        })
        .context("cannot write to stdout")?;
    out.flush().context("cannot write to stdout")?;
    if eventhubs && !summary.kinds.is_empty() {
        let kinds: Vec<String> = summary
            .kinds
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        let _ = writeln!(err, "records rendered by kind: {}", kinds.join(", "));
    }
    if summary.failed > 0 {
        let _ = writeln!(
            err,
            "{} event{} could not be rendered",
            summary.failed,
            if summary.failed == 1 { "" } else { "s" }
        );
        let _ = err.flush();
        return Ok(ExitCode::FAILURE);
    }
    let _ = err.flush();
    Ok(ExitCode::SUCCESS)
}
