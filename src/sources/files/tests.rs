use std::sync::Arc;

use super::*;
use crate::sources::SourceStats;
use crate::spool::{Spool, SpoolOptions};
use tokio_util::sync::CancellationToken;

fn ids(pages: &[Page]) -> Vec<Vec<String>> {
    pages
        .iter()
        .map(|p| {
            p.events
                .payloads()
                .map(|e| crate::event::Event::decode(e).unwrap().id)
                .collect()
        })
        .collect()
}

fn ndjson(range: std::ops::Range<usize>) -> String {
    range
        .map(|i| format!("{{\"eventDataId\":\"e{i}\"}}\n"))
        .collect()
}

#[test]
fn ndjson_is_paged_and_offsets_point_past_whole_lines() {
    let src = test_source(std::path::Path::new("/unused"), 2);
    let data = ndjson(0..5);
    let pages = src.pages("f", data.as_bytes(), FileProgress::default());
    assert_eq!(
        ids(&pages),
        [vec!["e0", "e1"], vec!["e2", "e3"], vec!["e4"]]
    );
    let line = data.len() / 5;
    assert_eq!(pages[0].progress.offset as usize, 2 * line);
    assert_eq!(pages[2].progress.offset as usize, data.len());
    // Resuming from the first page's checkpoint yields exactly the rest.
    let rest = src.pages("f", data.as_bytes(), pages[0].progress);
    assert_eq!(ids(&rest), [vec!["e2", "e3"], vec!["e4"]]);
}

#[test]
fn ndjson_waits_for_an_incomplete_last_line() {
    let src = test_source(std::path::Path::new("/unused"), 10);
    let data = format!("{}{{\"eventDataId\":\"e", ndjson(0..2));
    let pages = src.pages("f", data.as_bytes(), FileProgress::default());
    assert_eq!(ids(&pages), [vec!["e0", "e1"]]);
    let done = pages[0].progress;
    assert_eq!(done.offset as usize, data.rfind('\n').unwrap() + 1);
    // The writer finishes the line: only the new event comes out.
    let data = format!("{data}2\"}}\n");
    let pages = src.pages("f", data.as_bytes(), done);
    assert_eq!(ids(&pages), [vec!["e2"]]);
}

#[test]
fn whole_documents_of_every_shape_are_read() {
    let src = test_source(std::path::Path::new("/unused"), 100);
    for doc in [
        r#"[{"eventDataId":"a"},{"eventDataId":"b"}]"#,
        r#"{"value":[{"eventDataId":"a"},{"eventDataId":"b"}],"nextLink":null}"#,
        r#"{"records":[{"eventDataId":"a"},{"eventDataId":"b"}]}"#,
    ] {
        let pages = src.pages("f", doc.as_bytes(), FileProgress::default());
        assert_eq!(ids(&pages), [vec!["a", "b"]], "{doc}");
        assert_eq!(pages[0].progress.offset as usize, doc.len());
    }
}

#[test]
fn whole_documents_resume_after_the_items_already_spooled() {
    let src = test_source(std::path::Path::new("/unused"), 2);
    let doc = r#"{"records":[{"eventDataId":"a"},{"eventDataId":"b"},{"eventDataId":"c"}]}"#;
    let pages = src.pages("f", doc.as_bytes(), FileProgress::default());
    assert_eq!(ids(&pages), [vec!["a", "b"], vec!["c"]]);
    assert_eq!(
        pages[0].progress,
        FileProgress {
            offset: 0,
            items: 2,
            lines: 0,
            ..FileProgress::default()
        }
    );
    let rest = src.pages("f", doc.as_bytes(), pages[0].progress);
    assert_eq!(ids(&rest), [vec!["c"]]);
}

#[test]
fn bad_items_are_counted_and_skipped() {
    let src = test_source(std::path::Path::new("/unused"), 100);
    let data = "{\"eventDataId\":\"a\"}\nnot json\n[1]\n{\"eventDataId\":\"b\"}\n";
    let pages = src.pages("f", data.as_bytes(), FileProgress::default());
    assert_eq!(ids(&pages), [vec!["a", "b"]]);
    assert_eq!(pages[0].unreadable.count, 2);
}

/// Runs the source until it has spooled `expect` events in total, then stops it.
async fn run_until(src: FilesSource, spool: &Arc<Spool>, stats: &Arc<SourceStats>, expect: u64) {
    let cancel = CancellationToken::new();
    let ctx = SourceContext {
        spool: spool.clone(),
        cancel: cancel.clone(),
        stats: stats.clone(),
    };
    let task = tokio::spawn(src.run(ctx));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while stats.spooled.load(Ordering::Relaxed) < expect {
        assert!(
            std::time::Instant::now() < deadline,
            "source did not spool {expect} events"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cancel.cancel();
    task.await.unwrap().unwrap();
}

fn spooled_ids(spool: &Spool) -> Vec<String> {
    let mut out = Vec::new();
    spool.read(0, usize::MAX, usize::MAX, &mut out).unwrap();
    out.iter()
        .map(|r| crate::event::Event::decode(&r.payload).unwrap().id)
        .collect()
}

#[tokio::test]
async fn restart_resumes_from_the_spooled_checkpoint_without_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input");
    std::fs::create_dir(&input).unwrap();
    std::fs::write(input.join("a.json"), ndjson(0..5)).unwrap();
    std::fs::write(
        input.join("b.json"),
        format!(
            "[{}]",
            (5..8)
                .map(|i| format!("{{\"eventDataId\":\"e{i}\"}}"))
                .collect::<Vec<_>>()
                .join(",")
        ),
    )
    .unwrap();
    let spool = Arc::new(Spool::open(&dir.path().join("spool"), SpoolOptions::default()).unwrap());
    let stats = Arc::new(SourceStats::default());
    run_until(test_source(&input, 2), &spool, &stats, 8).await;
    let expected: Vec<String> = (0..8).map(|i| format!("e{i}")).collect();
    assert_eq!(spooled_ids(&spool), expected);

    // A real restart: the spool is closed and opened again from disk.
    drop(spool);
    let spool = Arc::new(Spool::open(&dir.path().join("spool"), SpoolOptions::default()).unwrap());
    let stats = Arc::new(SourceStats::default());
    // More data arrives while stopped: a grown file and a new file.
    let mut grown = ndjson(0..5);
    grown.push_str(&ndjson(8..10));
    std::fs::write(input.join("a.json"), grown).unwrap();
    std::fs::write(input.join("c.json"), ndjson(10..11)).unwrap();
    run_until(test_source(&input, 2), &spool, &stats, 3).await;
    let expected: Vec<String> = (0..11).map(|i| format!("e{i}")).collect();
    let mut got = spooled_ids(&spool);
    got.sort_by_key(|id| id[1..].parse::<u32>().unwrap());
    assert_eq!(got, expected, "every event exactly once across the restart");
}

#[test]
fn single_documents_and_ndjson_are_told_apart_from_the_first_line() {
    let single = |s: &str| lines::is_single_document(s.as_bytes(), event::MAX_EVENT_BYTES).unwrap();
    assert!(single("[{\"a\":1},\n{\"a\":2}]"));
    assert!(single("{\n  \"value\": []\n}\n"), "pretty-printed envelope");
    assert!(single("{\"records\":[]}\n\n"), "one object on one line");
    assert!(!single("{\"a\":1}\n{\"a\":2}\n"), "NDJSON");
    assert!(
        !single("\n\n{\"a\":1}\n\n{\"a\":2}"),
        "NDJSON after blank lines"
    );
    assert!(!single(""));
}

#[test]
fn ndjson_line_numbers_continue_across_pages() {
    let src = test_source(std::path::Path::new("/unused"), 2);
    let data = format!("{}not json\n", ndjson(0..3));
    let pages = src.pages("f", data.as_bytes(), FileProgress::default());
    assert_eq!(pages.last().unwrap().progress.lines, 4);
    assert_eq!(pages.iter().map(|p| p.unreadable.count).sum::<u64>(), 1);
}

/// A source driven one pass at a time over a real folder, spooling into a real spool.
struct Harness {
    src: FilesSource,
    spool: Arc<Spool>,
    stats: Arc<SourceStats>,
    checkpoint: FilesCheckpoint,
    tracker: Tracker,
    input: std::path::PathBuf,
    dir: tempfile::TempDir,
}

impl Harness {
    fn new(batch_size: usize) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("input");
        std::fs::create_dir(&input).unwrap();
        let spool =
            Arc::new(Spool::open(&dir.path().join("spool"), SpoolOptions::default()).unwrap());
        Harness {
            src: test_source(&input, batch_size),
            spool,
            stats: Arc::new(SourceStats::default()),
            checkpoint: FilesCheckpoint::default(),
            tracker: Tracker::default(),
            input,
            dir,
        }
    }

    fn file(&self, name: &str) -> std::path::PathBuf {
        self.input.join(name)
    }

    fn append(&self, name: &str, text: &str) {
        use std::io::Write as _;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.file(name))
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }

    async fn pass(&mut self) {
        let ctx = SourceContext {
            spool: self.spool.clone(),
            cancel: CancellationToken::new(),
            stats: self.stats.clone(),
        };
        let listing = self.src.list_files(self.tracker.path_was_file).unwrap();
        self.tracker.path_was_file = listing.single;
        let done = self
            .src
            .scan(listing, &mut self.checkpoint, &mut self.tracker, &ctx)
            .await
            .unwrap();
        assert!(done);
    }

    /// The ids spooled so far, sorted by number, asserting that none came twice.
    fn ids_once(&self) -> Vec<String> {
        let mut got = spooled_ids(&self.spool);
        got.sort_by_key(|id| id[1..].parse::<u32>().unwrap());
        let mut unique = got.clone();
        unique.dedup();
        assert_eq!(unique, got, "an event was spooled twice");
        got
    }
}

fn expect(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("e{i}")).collect()
}

#[tokio::test]
async fn a_file_renamed_within_the_folder_is_read_on_and_the_new_one_from_its_start() {
    let mut h = Harness::new(2);
    h.append("app.log", &ndjson(0..3));
    h.pass().await;
    // logrotate's default (create): the writer adds a last line, the file becomes app.log.1,
    // a new app.log is written, longer than the old offset.
    h.append("app.log", &ndjson(3..5));
    std::fs::rename(h.file("app.log"), h.file("app.log.1")).unwrap();
    h.append("app.log", &ndjson(5..12));
    h.pass().await;
    assert_eq!(h.ids_once(), expect(0..12));
    // Rotated again: app.log.1 -> app.log.2 and app.log -> app.log.1; nothing is read twice.
    std::fs::rename(h.file("app.log.1"), h.file("app.log.2")).unwrap();
    std::fs::rename(h.file("app.log"), h.file("app.log.1")).unwrap();
    h.append("app.log", &ndjson(12..13));
    h.pass().await;
    assert_eq!(h.ids_once(), expect(0..13));
    assert_eq!(
        h.checkpoint.files.keys().collect::<Vec<_>>(),
        ["app.log", "app.log.1", "app.log.2"]
    );
}

#[tokio::test]
async fn copytruncate_restarts_the_file_and_finishes_the_copy_from_the_old_offset() {
    for longer in [true, false] {
        let mut h = Harness::new(3);
        h.append("app.log", &ndjson(0..4));
        h.pass().await;
        // Written after the last pass, then copied to app.log.1 and truncated in place; the
        // writer goes on at the start of the emptied file.
        h.append("app.log", &ndjson(4..6));
        std::fs::copy(h.file("app.log"), h.file("app.log.1")).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(h.file("app.log"))
            .unwrap()
            .set_len(0)
            .unwrap();
        // Longer than the old offset (only the fingerprint tells), or shorter (the size does).
        let end = if longer { 20 } else { 7 };
        h.append("app.log", &ndjson(6..end));
        h.pass().await;
        assert_eq!(h.ids_once(), expect(0..end), "longer: {longer}");
    }
}

#[tokio::test]
async fn a_file_renamed_out_of_the_folder_is_finished_from_the_open_file() {
    let mut h = Harness::new(2);
    h.append("app.log", &ndjson(0..3));
    h.pass().await;
    let away = h.dir.path().join("app.log.1");
    h.append("app.log", &ndjson(3..5));
    std::fs::rename(h.file("app.log"), &away).unwrap();
    // The writer has not reopened yet: one more line in the renamed file.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&away)
        .map(|mut f| std::io::Write::write_all(&mut f, ndjson(5..6).as_bytes()))
        .unwrap()
        .unwrap();
    h.append("app.log", &ndjson(6..15));
    h.pass().await;
    assert_eq!(h.ids_once(), expect(0..15));
    // A deleted file is finished too, then forgotten (its handle closed).
    h.append("app.log", &ndjson(15..17));
    std::fs::remove_file(h.file("app.log")).unwrap();
    h.pass().await;
    assert_eq!(h.ids_once(), expect(0..17));
    assert!(h.checkpoint.files.is_empty());
    assert!(
        h.tracker.held.is_empty(),
        "the deleted file's handle is closed"
    );
}

#[tokio::test]
async fn a_file_replaced_by_a_longer_copy_of_itself_is_read_on() {
    // What an editor or `sed -i` does: a new inode starting with the same bytes.
    let mut h = Harness::new(10);
    h.append("a.json", &ndjson(0..3));
    h.pass().await;
    std::fs::write(h.file("a.json.tmp"), ndjson(0..5)).unwrap();
    std::fs::rename(h.file("a.json.tmp"), h.file("a.json")).unwrap();
    h.pass().await;
    assert_eq!(h.ids_once(), expect(0..5));
}

#[tokio::test]
async fn an_oversized_line_is_skipped_alone_also_while_it_is_being_written() {
    let mut h = Harness::new(10);
    h.src.max_event = 64;
    let big = format!("{{\"eventDataId\":\"big\",\"x\":\"{}\"}}", "y".repeat(200));
    // Complete, between two good lines.
    h.append(
        "a.json",
        &format!("{}{big}\n{}", ndjson(0..1), ndjson(1..2)),
    );
    h.pass().await;
    assert_eq!(h.ids_once(), expect(0..2));
    assert_eq!(h.stats.rejected.load(Ordering::Relaxed), 1);
    // Still being written at the end of the file: skipped up to its newline over two passes.
    h.append("a.json", &big[..100]);
    h.pass().await;
    let progress = h.checkpoint.files["a.json"];
    assert!(progress.skipping, "{progress:?}");
    assert_eq!(
        progress.offset,
        std::fs::metadata(h.file("a.json")).unwrap().len()
    );
    h.append("a.json", &format!("{}\n{}", &big[100..], ndjson(2..3)));
    h.pass().await;
    assert_eq!(h.ids_once(), expect(0..3));
    assert_eq!(h.stats.rejected.load(Ordering::Relaxed), 2);
    assert!(!h.checkpoint.files["a.json"].skipping);
    // A line exactly at the limit is taken.
    let fits = format!(
        "{{\"eventDataId\":\"e3\",\"x\":\"{}\"}}",
        "y".repeat(64 - 27)
    );
    assert_eq!(fits.len(), 64);
    h.append("a.json", &format!("{fits}\n"));
    h.pass().await;
    assert_eq!(h.ids_once(), expect(0..4));
    // The first and only line of a file: an oversized record too (not a whole document).
    h.append("b.json", &format!("{big}\n"));
    h.pass().await;
    assert_eq!(h.stats.rejected.load(Ordering::Relaxed), 3);
    h.append("b.json", &ndjson(4..5));
    h.pass().await;
    assert_eq!(h.ids_once(), expect(0..5));
}

#[test]
fn a_record_over_the_limit_in_a_whole_document_is_rejected_alone() {
    let mut src = test_source(std::path::Path::new("/unused"), 10);
    src.max_event = 64;
    let doc = format!(
        r#"{{"records":[{{"eventDataId":"a"}},{{"eventDataId":"big","x":"{}"}},{{"eventDataId":"b"}}]}}"#,
        "y".repeat(100)
    );
    let pages = src.pages("f", doc.as_bytes(), FileProgress::default());
    assert_eq!(ids(&pages), [vec!["a", "b"]]);
    assert_eq!(pages[0].unreadable.count, 1);
    let reason = pages[0].unreadable.first.as_deref().unwrap();
    assert!(reason.contains("over the event size limit"), "{reason}");
}

#[test]
fn unreadable_lines_are_counted_and_only_the_first_reason_kept() {
    let src = test_source(std::path::Path::new("/unused"), 10);
    let data: String = (0..1000).map(|i| format!("garbage {i}\n")).collect();
    let pages = src.pages("f", data.as_bytes(), FileProgress::default());
    let count: u64 = pages.iter().map(|p| p.unreadable.count).sum();
    assert_eq!(count, 1000);
    assert!(pages[0]
        .unreadable
        .first
        .as_deref()
        .unwrap()
        .starts_with("line 1: "));
}

#[tokio::test]
async fn version_1_checkpoints_are_read_and_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input");
    std::fs::create_dir(&input).unwrap();
    let first = ndjson(0..3);
    std::fs::write(input.join("a.json"), format!("{first}{}", ndjson(3..5))).unwrap();
    // What version 1 wrote after reading the first three lines of a.json.
    let v1 = format!(
        r#"{{"version":1,"files":{{"a.json":{{"offset":{},"items":0,"lines":3}}}}}}"#,
        first.len()
    );
    let spool = Arc::new(Spool::open(&dir.path().join("spool"), SpoolOptions::default()).unwrap());
    spool.append_batch("files", &[], v1.as_bytes()).unwrap();
    let stats = Arc::new(SourceStats::default());
    run_until(test_source(&input, 10), &spool, &stats, 2).await;
    assert_eq!(
        spooled_ids(&spool),
        expect(3..5),
        "resumed at the v1 offset"
    );
    let now = FilesCheckpoint::decode(&spool.checkpoint("files").unwrap()).unwrap();
    assert_eq!(now.version, CHECKPOINT_VERSION);
    let entry = now.files["a.json"];
    let meta = std::fs::metadata(input.join("a.json")).unwrap();
    use std::os::unix::fs::MetadataExt as _;
    assert_eq!((entry.dev, entry.ino), (meta.dev(), meta.ino()));
    assert_eq!(entry.offset, meta.len());
    assert!(entry.fp_len > 0);
    assert_eq!(entry.lines, 5);
}

#[tokio::test]
async fn a_configured_file_being_rotated_is_finished_and_its_successor_read_from_its_start() {
    let mut h = Harness::new(10);
    h.src.path = h.file("app.log");
    h.append("app.log", &ndjson(0..3));
    h.pass().await;
    h.append("app.log", &ndjson(3..5));
    std::fs::rename(h.file("app.log"), h.file("app.log.1")).unwrap();
    // Not created again yet: no error, and the renamed file is read to its end.
    h.pass().await;
    assert_eq!(h.ids_once(), expect(0..5));
    h.append("app.log", &ndjson(5..8));
    h.pass().await;
    assert_eq!(h.ids_once(), expect(0..8));
    // A path that never existed is still an error to report.
    h.src.path = h.file("missing.log");
    assert!(h.src.list_files(false).is_err());
}

#[tokio::test]
async fn open_handles_stay_bounded_with_more_files_than_may_be_held() {
    let mut h = Harness::new(1000);
    let n = MAX_HELD + 44;
    for i in 0..n {
        h.append(&format!("f{i:04}.json"), &ndjson(i..i + 1));
    }
    h.pass().await;
    assert_eq!(h.ids_once(), expect(0..n));
    assert_eq!(h.tracker.held.len(), MAX_HELD);
    // The next pass touches only what changed, and takes a handle for it.
    h.append("f0300.json", &ndjson(n..n + 1));
    h.pass().await;
    assert_eq!(h.ids_once(), expect(0..n + 1));
    assert!(h.tracker.held.len() <= MAX_HELD);
    assert!(h
        .tracker
        .held
        .values()
        .any(|held| held.used == h.tracker.pass));
}

#[tokio::test]
async fn a_copy_seen_before_the_truncation_is_not_read_twice() {
    // copytruncate copies first and truncates after; a pass may fall in between.
    let mut h = Harness::new(100);
    h.append("app.log", &ndjson(0..60));
    assert!(std::fs::metadata(h.file("app.log")).unwrap().len() > 1024);
    h.pass().await;
    h.append("app.log", &ndjson(60..62));
    std::fs::copy(h.file("app.log"), h.file("app.log.1")).unwrap();
    h.pass().await;
    assert_eq!(
        h.ids_once(),
        expect(0..62),
        "the copy is not read beside its original"
    );
    assert!(!h.checkpoint.files.contains_key("app.log.1"));
    h.append("app.log.1", &ndjson(62..63)); // the last line written before the truncation
    std::fs::OpenOptions::new()
        .write(true)
        .open(h.file("app.log"))
        .unwrap()
        .set_len(0)
        .unwrap();
    h.append("app.log", &ndjson(63..65));
    h.pass().await;
    assert_eq!(h.ids_once(), expect(0..65));
    // Hard links share an inode: each name is a file of its own and keeps its own entry (not
    // taken for a rename back and forth at every pass), so a new line comes once per name.
    std::fs::hard_link(h.file("app.log"), h.file("app.hard")).unwrap();
    h.pass().await;
    h.pass().await;
    assert_eq!(
        h.checkpoint.files["app.hard"].offset,
        h.checkpoint.files["app.log"].offset
    );
    let got = spooled_ids(&h.spool).len();
    h.append("app.log", &ndjson(65..66));
    h.pass().await;
    assert_eq!(
        spooled_ids(&h.spool).len(),
        got + 2,
        "one line, under two names"
    );
}
