//! Unit tests of the `storage_archive` source's checkpoint, SAS check and record ids.

use super::*;

fn pos(offset: u64) -> BlobPos {
    BlobPos {
        offset,
        created: "Sun, 06 Dec 2026 17:00:01 GMT".into(),
        hour_ms: 1_796_576_400_000,
    }
}

#[test]
fn checkpoint_chains_add_up_deltas_and_forget_blobs() {
    let mut full = ArchiveCheckpoint {
        v: VERSION,
        full: true,
        from_hour_ms: 10,
        ..Default::default()
    };
    full.blobs.insert("c/a".into(), pos(5));
    full.blobs.insert("c/b".into(), pos(7));
    let mut delta = ArchiveCheckpoint {
        v: VERSION,
        full: false,
        from_hour_ms: 20,
        gone: vec!["c/a".into()],
        ..Default::default()
    };
    delta.blobs.insert("c/b".into(), pos(9));
    let chain = vec![
        serde_json::to_vec(&full).unwrap(),
        serde_json::to_vec(&delta).unwrap(),
    ];
    let ck = ArchiveCheckpoint::decode_chain(&chain).unwrap();
    assert_eq!(ck.from_hour_ms, 20);
    assert_eq!(ck.blobs.len(), 1);
    assert_eq!(ck.blobs["c/b"].offset, 9);
    // A delta without its full checkpoint, or another version, is not read.
    assert_eq!(ArchiveCheckpoint::decode_chain(&chain[1..]), None);
    let other = br#"{"v":9,"full":true,"from_hour_ms":0,"blobs":{}}"#.to_vec();
    assert_eq!(ArchiveCheckpoint::decode_chain(&[other]), None);
}

#[test]
fn sas_files_need_read_list_and_time_left() {
    let now = 1_796_576_400_000; // 2026-12-06T17:00:00Z
    let good =
        "?sv=2022-11-02&ss=b&srt=co&sp=rl&se=2027-01-01T00%3A00%3A00Z&spr=https&sig=abc%3D\n";
    assert_eq!(check_sas(good, now), Ok(()));
    let read_only = good.replace("sp=rl", "sp=r");
    assert!(check_sas(&read_only, now).unwrap_err().contains("sp=rl"));
    let expired = good.replace("2027-01-01", "2026-01-01");
    assert!(check_sas(&expired, now).unwrap_err().contains("expired"));
    let err = check_sas("Endpoint=sb://x;SharedAccessKey=secretvalue", now).unwrap_err();
    assert!(!err.contains("secretvalue"), "{err}");
}

#[test]
fn record_ids_follow_place_and_content() {
    let a = record_id("c", "b/PT1H.json", 10, b"{\"x\":1}");
    assert!(a.starts_with("sa-") && a.len() == 27, "{a}");
    assert_eq!(a, record_id("c", "b/PT1H.json", 10, b"{\"x\":1}"));
    assert_ne!(a, record_id("c", "b/PT1H.json", 11, b"{\"x\":1}"));
    assert_ne!(a, record_id("c", "b/PT1H.json", 10, b"{\"x\":2}"));
    assert_ne!(a, record_id("d", "b/PT1H.json", 10, b"{\"x\":1}"));
}

#[test]
fn records_are_routed_like_streamed_ones_and_flow_logs_split_into_tuples() {
    let line = br#" {"time":"2026-12-06T17:01:00Z","category":"Administrative","operationName":"X/WRITE","properties":{"eventCategory":"Administrative"}}"#;
    let evs = record_events("s", "insights-activity-logs", "b/PT1H.json", 40, line).unwrap();
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].kind, crate::event::EventKind::EventHubsActivity);
    assert_eq!(
        evs[0].id,
        record_id("insights-activity-logs", "b/PT1H.json", 40, line)
    );
    let v: serde_json::Value = serde_json::from_slice(&evs[0].json).unwrap();
    assert_eq!(v["_siemcast"]["blob"], "b/PT1H.json");
    assert_eq!(v["_siemcast"]["offset"], 40);
    assert_eq!(v["operationName"], "X/WRITE");
    let flow = br#"{"time":"2026-12-06T17:01:00Z","category":"NetworkSecurityGroupFlowEvent","properties":{"Version":1,"flows":[{"rule":"r","flows":[{"mac":"000D3AF87856","flowTuples":["1796576460,192.0.2.95,10.1.0.4,51529,5358,T,I,D"]}]}]}}"#;
    let evs = record_events("s", "c", "b", 12, flow).unwrap();
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].kind, crate::event::EventKind::NetworkFlow);
    assert!(record_events("s", "c", "b", 0, b"not json")
        .unwrap_err()
        .contains("not a JSON object"));
    assert!(
        record_events("s", "c", b"\xff".len().to_string().as_str(), 0, b"\xff{}")
            .unwrap_err()
            .contains("UTF-8")
    );
}

#[test]
fn creation_times_compare_as_instants() {
    assert!(same_time(
        "Sun, 06 Dec 2026 17:00:01 GMT",
        "Sun, 6 Dec 2026 17:00:01 +0000"
    ));
    assert!(!same_time(
        "Sun, 06 Dec 2026 17:00:01 GMT",
        "Sun, 06 Dec 2026 17:00:02 GMT"
    ));
    assert!(same_time("", ""));
    assert!(!same_time("x", ""));
}
