//! `siemcast render`: saved events rendered and framed by the sender's own code
//! ([`crate::destinations::render_message`]), so what it prints is byte for byte what a
//! destination with default settings sends. The input is split into events at byte level (no
//! `Value` tree), and Event Hubs messages are routed and stamped by the `eventhubs` source's own
//! decoder.

pub(crate) mod documents;

use std::collections::BTreeMap;
use std::io::Write;

use crate::config::SyslogFormat;
use crate::destinations::body::BodyJson;
use crate::destinations::render_message;
use crate::destinations::syslog::{Stamp, SyslogWriter};
use crate::mapping::{Mapping, MappingSet, RenderError};
use crate::sources::eventhubs::records::{self, Coordinates};

/// The mapping(s) a preview renders with.
#[derive(Debug)]
pub enum Mappings {
    /// One mapping file, for every event.
    One(Mapping),
    /// `<dir>/<kind>.toml` per event kind (records of one kind, or routed Event Hubs records).
    ByKind(MappingSet),
}

/// What the input holds.
#[derive(Debug, Clone)]
pub enum InputShape {
    /// Events of one kind, in the shapes a `files` source reads; `kind` picks the mapping from a
    /// [`Mappings::ByKind`].
    Records { kind: Option<String> },
    /// Event Hubs message bodies (`{"records":[…]}`), each record routed to its kind and
    /// stamped as the `eventhubs` source does, as if message `n` of the input (from 0) were at
    /// `offset + n` of `topic`/`partition`.
    EventHubs {
        topic: String,
        partition: i32,
        offset: i64,
    },
}

/// What a preview did.
#[derive(Debug, Default)]
pub struct Summary {
    /// Events written.
    pub rendered: u64,
    /// Events (or messages) that could not be rendered; each was reported.
    pub failed: u64,
    /// Events written per mapping kind (Event Hubs input only).
    pub kinds: BTreeMap<&'static str, u64>,
}

/// Renders events as a destination does.
#[derive(Debug)]
pub struct Preview {
    mappings: Mappings,
    shape: InputShape,
    writer: SyslogWriter,
    stamp: Stamp,
}

/// Output is handed to the writer in chunks of about this size.
const CHUNK: usize = 256 << 10;

impl Preview {
    /// A preview with the syslog header `format` of a destination whose other settings are at
    /// their defaults, stamped with the current time.
    pub fn new(mappings: Mappings, shape: InputShape, format: SyslogFormat) -> Preview {
        let zone = jiff::tz::TimeZone::try_system().unwrap_or(jiff::tz::TimeZone::UTC);
        Preview {
            mappings,
            shape,
            writer: SyslogWriter::preview(format),
            stamp: Stamp::now(&zone),
        }
    }

    /// Renders every event of `input` to `out`, one framed message each, in input order. An
    /// event that cannot be rendered is reported to `report` as `event INDEX: reason` (INDEX
    /// counts every item of the input from 0, good or bad) and the others are still rendered.
    pub fn run(
        &self,
        input: &[u8],
        out: &mut dyn Write,
        report: &mut dyn FnMut(&str),
    ) -> std::io::Result<Summary> {
        let mut run = Run {
            preview: self,
            out,
            report,
            buf: Vec::with_capacity(CHUNK + (64 << 10)),
            payload: Vec::with_capacity(4096),
            index: 0,
            summary: Summary::default(),
            io: Ok(()),
        };
        match &self.shape {
            InputShape::Records { kind } => {
                let mapping = match (&self.mappings, kind) {
                    (Mappings::One(m), _) => Ok(m),
                    (Mappings::ByKind(set), Some(k)) => set
                        .get(k)
                        .ok_or_else(|| format!("no mapping for kind \"{k}\" was loaded")),
                    (Mappings::ByKind(_), None) => {
                        Err("records of one kind need that kind to pick a mapping".to_owned())
                    }
                };
                let mapping = mapping.map_err(std::io::Error::other)?;
                documents::for_each(input, |piece| run.record(mapping, piece));
            }
            InputShape::EventHubs {
                topic,
                partition,
                offset,
            } => {
                let mut message = 0i64;
                documents::for_each_message(input, |piece| {
                    let at = Coordinates {
                        topic,
                        partition: *partition,
                        offset: offset.saturating_add(message),
                    };
                    message += 1;
                    run.message(at, piece);
                });
            }
        }
        run.flush();
        run.io?;
        Ok(run.summary)
    }
}

/// One pass over the input.
struct Run<'p, 'o> {
    preview: &'p Preview,
    out: &'o mut dyn Write,
    report: &'o mut dyn FnMut(&str),
    buf: Vec<u8>,
    payload: Vec<u8>,
    index: u64,
    summary: Summary,
    /// The first write error; once set, nothing more is written.
    io: std::io::Result<()>,
}

impl Run<'_, '_> {
    fn record(&mut self, mapping: &Mapping, piece: documents::Piece<'_>) {
        let index = self.next();
        let reason = match piece {
            Ok((json, line)) => match self.render(mapping, json) {
                Ok(()) => return,
                // The same words `event::read_documents` uses for a line that is not JSON.
                Err(RenderError::Json(e)) => format!("line {line}: not valid JSON: {e}"),
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        self.fail(index, &reason);
    }

    fn message(&mut self, at: Coordinates<'_>, piece: documents::Piece<'_>) {
        let (json, line) = match piece {
            Ok(p) => p,
            Err(e) => {
                let index = self.next();
                return self.fail(index, &e.to_string());
            }
        };
        let decoded = records::decode("render", at, Some(json));
        let place = format!("line {line} (offset {})", at.offset);
        let not_object = |i: usize| {
            decoded
                .bad
                .contains(&records::BadMessage::RecordNotObject(i))
        };
        if decoded.events.is_empty() && !decoded.bad.is_empty() && !not_object(0) {
            // The message as a whole could not be read.
            for bad in &decoded.bad {
                let index = self.next();
                self.fail(index, &format!("{place}: {bad}"));
            }
            return;
        }
        let preview = self.preview;
        let mut events = decoded.events.iter();
        for record in 0..decoded.events.len() + decoded.bad.len() {
            let index = self.next();
            if not_object(record) {
                self.fail(
                    index,
                    &format!("{place}: record {record} is not a JSON object"),
                );
                continue;
            }
            let Some(ev) = events.next() else { break };
            let kind = ev.kind.as_str();
            let mapping = match &preview.mappings {
                Mappings::One(m) => Some(m),
                Mappings::ByKind(set) => set.get(kind),
            };
            let result = match mapping {
                Some(m) => self.render(m, &ev.json).map_err(|e| e.to_string()),
                None => Err("no mapping for this kind was loaded".to_owned()),
            };
            match result {
                Ok(()) => *self.summary.kinds.entry(kind).or_default() += 1,
                Err(e) => self.fail(index, &format!("{place}: record {record} ({kind}): {e}")),
            }
        }
    }

    /// The index of the next item of the input.
    fn next(&mut self) -> u64 {
        self.index += 1;
        self.index - 1
    }

    /// Renders and frames one event into the output buffer, exactly as a destination does.
    fn render(&mut self, mapping: &Mapping, json: &[u8]) -> Result<(), RenderError> {
        let p = self.preview;
        render_message(
            mapping,
            &p.writer,
            p.writer.default_tail(),
            &p.stamp,
            BodyJson::unchecked(json),
            &mut self.payload,
            &mut self.buf,
        )?;
        self.summary.rendered += 1;
        if self.buf.len() >= CHUNK {
            self.flush();
        }
        Ok(())
    }

    fn fail(&mut self, index: u64, reason: &str) {
        (self.report)(&format!("event {index}: {reason}"));
        self.summary.failed += 1;
    }

    /// Writes the buffer out; after a write error (a closed pipe), output is dropped and the
    /// error is returned at the end.
    fn flush(&mut self) {
        if self.io.is_ok() {
            self.io = self.out.write_all(&self.buf);
        }
        self.buf.clear();
    }
}
