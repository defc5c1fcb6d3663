//! The manual page `siemcast(1)`, rendered from the command-line definition (clap_mangen for
//! the synopses and options, roff for the rest), so it says what `--help` says: every command
//! with its synopsis, description, examples and options, then exit status, environment, files
//! and signals. `siemcast man` prints it; the .deb ships it.

use clap::Command;
use clap_mangen::Man;
use roff::{bold, roman, Roff};

/// Renders the whole page for the root command `cmd`.
pub fn render(mut cmd: Command) -> std::io::Result<Vec<u8>> {
    // Building sets the subcommands' bin names ("siemcast spool status") used in synopses.
    cmd.build();
    let man = Man::new(cmd.clone())
        .title("SIEMCAST")
        .section("1")
        .source(format!("siemcast {}", env!("CARGO_PKG_VERSION")))
        .manual("siemcast manual");
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    let mut page = Roff::new();
    page.control("SH", ["DESCRIPTION"]);
    paragraphs(&mut page, &cmd);
    page.to_writer(&mut out)?;
    man.render_options_section(&mut out)?;

    let mut heading = Roff::new();
    heading.control("SH", ["COMMANDS"]);
    heading.to_writer(&mut out)?;
    for sub in commands(&cmd) {
        command_section(&sub, &mut out)?;
    }
    out.extend_from_slice(TRAILER.as_bytes());
    Ok(out)
}

/// Every visible command that does something, depth first: `run`, …, `spool status`, ….
fn commands(cmd: &Command) -> Vec<Command> {
    let mut all = Vec::new();
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        if sub.has_subcommands() {
            all.extend(commands(sub));
        } else {
            all.push(sub.clone());
        }
    }
    all
}

/// `.SS siemcast spool status`, its synopsis, description and options.
fn command_section(sub: &Command, out: &mut Vec<u8>) -> std::io::Result<()> {
    let name = sub.get_bin_name().unwrap_or_else(|| sub.get_name());
    let mut head = Roff::new();
    head.control("SS", [name]);
    head.to_writer(out)?;
    // The generated synopsis and options come with `.SH` headings; inside a command's
    // section they become bold run-in labels.
    let man = Man::new(sub.clone());
    let mut synopsis = Vec::new();
    man.render_synopsis_section(&mut synopsis)?;
    out.extend_from_slice(&demote(&synopsis));
    let mut text = Roff::new();
    text.control("PP", []);
    paragraphs(&mut text, sub);
    text.to_writer(out)?;
    let mut options = Vec::new();
    man.render_options_section(&mut options)?;
    out.extend_from_slice(&demote(&options));
    Ok(())
}

/// `.SH NAME` lines → `.PP` + a bold label.
fn demote(roff: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(roff);
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        match line.strip_prefix(".SH ") {
            Some(title) => {
                let title = title.trim_matches('"');
                let mut label = title.to_lowercase();
                label[..1].make_ascii_uppercase();
                out.push_str(&format!(".PP\n.B {label}:\n"));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out.into_bytes()
}

/// The long help as paragraphs; indented lines (examples) are kept as they are.
fn paragraphs(roff: &mut Roff, cmd: &Command) {
    let Some(about) = cmd.get_long_about().or_else(|| cmd.get_about()) else {
        return;
    };
    let mut verbatim = false;
    for line in about.to_string().lines() {
        let indented = line.starts_with("  ");
        if indented != verbatim {
            if indented {
                roff.control("RS", ["4"]).control("nf", []);
            } else {
                roff.control("fi", []).control("RE", []);
            }
            verbatim = indented;
        }
        if line.trim().is_empty() {
            if !verbatim {
                roff.control("PP", []);
            }
        } else if indented {
            roff.text([bold(line.trim())]);
        } else {
            roff.text([roman(line)]);
        }
    }
    if verbatim {
        roff.control("fi", []).control("RE", []);
    }
}

/// Sections that are not about one command. Plain roff; kept in sync with the README.
const TRAILER: &str = r#".SH "EXIT STATUS"
.TP
.B 0
success: \fBrun\fR stopped cleanly on SIGTERM or SIGINT, \fBcheck\fR found no problem, every event was rendered, every destination acknowledged the test event, the spool command did its job.
.TP
.B 1
failure: the configuration or a mapping is invalid (each problem is printed as FILE:LINE:COL: message), an event could not be rendered, a destination failed, or the service stopped because a component failed (the log says which).
.TP
.B 2
the command line itself is wrong (unknown option, missing argument).
.SH ENVIRONMENT
.TP
.B SIEMCAST_CONFIG
the configuration file when \fB\-c\fR is not given (default \fI/etc/siemcast/siemcast.toml\fR).
.TP
.B SIEMCAST_\fIKEY\fB__\fISUBKEY\fR
overrides any configuration key, levels joined by two underscores, e.g. \fBSIEMCAST_AZURE__TENANT_ID\fR, \fBSIEMCAST_AZURE__CLIENT_SECRET\fR, \fBSIEMCAST_STATE_DIR\fR.
.TP
.B RUST_LOG
log filter when \fB\-\-log\-level\fR is not given (default \fBinfo\fR).
.TP
.B NOTIFY_SOCKET, WATCHDOG_USEC, JOURNAL_STREAM, CREDENTIALS_DIRECTORY
set by systemd: \fBrun\fR reports READY=1, STATUS=, WATCHDOG=1, RELOADING=1, STOPPING=1 and EXTEND_TIMEOUT_USEC= while a stop drains; logs go to the journal with structured fields; credentials from LoadCredential= are read from that folder.
.SH FILES
.TP
.I /etc/siemcast/siemcast.toml
the configuration; every option is listed there, commented, with its default.
.TP
.I /usr/share/siemcast/mappings/{arcsight,qradar}/
the shipped CEF and LEEF mapping files, one per source kind.
.TP
.I /etc/siemcast/mappings/
the place for your own copies of mapping files; point a destination's \fBmappings\fR at it.
.TP
.I /var/lib/siemcast/
the state: the spool (spool/), checkpoints, and dead-letter/\fIdestination\fR.ndjson for events that could not be rendered.
.TP
.I /usr/lib/systemd/system/siemcast.service
the unit: Type=notify, hardened sandbox, ExecStartPre=siemcast check.
.SH SIGNALS
.TP
.B SIGTERM, SIGINT
stop: sources finish the page in hand, destinations finish their batch and wait for acknowledgements, cursors are saved, exit 0.
.TP
.B SIGHUP
reload the configuration and every mapping; when the new set is invalid the running one stays and the log says why.
.SH "METRICS AND HEALTH"
With \fB[metrics] address\fR set (default 127.0.0.1:9464), \fBrun\fR serves Prometheus text on \fI/metrics\fR, the spool status as JSON on \fI/spool\fR, and \fI/healthz\fR: 200 "ok", or 503 with one reason per line when the pipeline is starting, a source task ended, a destination is neither connected nor draining, or an API source has not polled successfully within its interval plus \fB[metrics] poll_grace\fR (default 5m).
.SH "SEE ALSO"
.BR systemctl (1),
.BR journalctl (1),
.BR systemd.service (5);
/usr/share/doc/siemcast/README.md
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_headings_become_labels() {
        assert_eq!(
            String::from_utf8(demote(b".SH SYNOPSIS\n\\fBx\\fR\n")).unwrap(),
            ".PP\n.B Synopsis:\n\\fBx\\fR\n"
        );
    }

    #[test]
    fn nested_commands_are_listed_with_their_full_names() {
        let cmd = Command::new("t")
            .subcommand(Command::new("a").about("does a"))
            .subcommand(Command::new("hidden").hide(true))
            .subcommand(
                Command::new("g")
                    .subcommand(Command::new("b"))
                    .subcommand(Command::new("c")),
            );
        let page = String::from_utf8(render(cmd).unwrap()).unwrap();
        for name in [".SS \"t a\"", ".SS \"t g b\"", ".SS \"t g c\""] {
            assert!(page.contains(name), "{name} missing:\n{page}");
        }
        assert!(!page.contains("hidden"), "{page}");
        assert!(page.contains(".SH \"EXIT STATUS\""));
    }
}
