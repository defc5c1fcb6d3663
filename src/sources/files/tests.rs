use std::sync::Arc;

use super::*;
use crate::sources::SourceStats;
use crate::spool::{Spool, SpoolOptions};
use tokio_util::sync::CancellationToken;

fn ids(pages: &[Page]) -> Vec<Vec<String>> {
    pages
        .iter()
        .map(|p| p.events.iter().map(|e| e.id.clone()).collect())
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
